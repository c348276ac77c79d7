"""`make bench`: run every benchmark (each prints its table and writes bench/results/<name>.json), then BENCHMARKS.md.

A benchmark that fails is reported and the others still run; the exit code is non-zero if any failed.
"""

from __future__ import annotations

import importlib
import sys
import time

from bench import report

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
        try:
            result = importlib.import_module(module_name).main([])
            if result not in (None, 0):
                failed.append(module_name)
        except Exception as exc:  # One broken benchmark must not hide the others' figures.
            print(f"{module_name} failed: {type(exc).__name__}: {exc}", flush=True)
            failed.append(module_name)
        print(f"({module_name}: {time.monotonic() - started:.0f}s)", flush=True)
    report.main()
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
