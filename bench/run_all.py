"""`make bench`: run every benchmark (each prints its table and writes bench/results/<name>.json), then BENCHMARKS.md.

Each benchmark runs in its own process, as `python -m bench.<name>` would: they set LiteLLM's global callbacks,
logging handlers and environment, and one left behind broke the next (run in one process, the template call of
bench_consumer was never logged and bench_e2e saw 0 of 150 calls). A benchmark that fails is reported and the
others still run; the exit code is non-zero if any failed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench import report

REPO_ROOT = Path(__file__).resolve().parents[1]

BENCHMARKS = [
    "bench.bench_callback",
    "bench.bench_publisher",
    "bench.bench_encode",
    "bench.bench_proxy",
    "bench.bench_consumer",
    "bench.bench_versions",
    "bench.bench_e2e",
    "bench.bench_layer",
    "bench.bench_usage_metrics",
    "bench.bench_rollup",
    "bench.bench_hour_states",
]


def main(argv: list[str] | None = None) -> int:
    wanted = (argv if argv is not None else sys.argv[1:]) or BENCHMARKS
    failed = []
    for name in wanted:
        module_name = name if name.startswith("bench.") else f"bench.{name}"
        print(f"\n=== {module_name} ===", flush=True)
        started = time.monotonic()
        returncode = subprocess.run([sys.executable, "-m", module_name], cwd=REPO_ROOT, check=False).returncode
        if returncode != 0:  # One broken benchmark must not hide the others' figures.
            print(f"{module_name} failed: exit code {returncode}", flush=True)
            failed.append(module_name)
        print(f"({module_name}: {time.monotonic() - started:.0f}s)", flush=True)
    report.main()
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
