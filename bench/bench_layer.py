"""Lambda layer size and the two handlers' cold import on Python 3.13, with and without the layer's bytecode.

Builds the real arm64 layer the CDK app ships (pip, no Docker, bytecode compiled by Python 3.13) and reports its
unzipped and zipped size and file count. Then builds the same lock for this machine's architecture the same way
and times a fresh `import handler` of the consumer and of the presign Lambda with Python 3.13 and exactly the
layer's packages on the path (`-S`: no site-packages, as in Lambda where /opt/python is the only source), once
with the layer's bytecode and once with it removed and bytecode writing off (what a read-only /opt without .pyc
costs on every cold start). Medians of IMPORT_RUNS fresh interpreters, alternating the two variants.
`python -m bench.bench_layer` (needs PyPI and a Python 3.13, as `make synth` does)."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import median, write_result

REPO = Path(__file__).resolve().parents[1]
IMPORT_RUNS = 5
LAMBDA_UNZIPPED_LIMIT_MB = 250.0
COLD_IMPORT_TARGET_S = 1.5
HOST_PLATFORM = {"x86_64": "manylinux2014_x86_64", "aarch64": "manylinux2014_aarch64"}
PRESIGN_ENV = {
    "MLFLOW_TRACKING_URI": "arn:aws:sagemaker:us-east-1:123456789012:mlflow-app/app-ABCDEF123456",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
}
# Wall time and CPU time of the import: on a shared machine the wall time includes waiting for a core.
PROBE = (
    "import time; t, c = time.perf_counter(), time.process_time(); import handler; "
    "print(time.perf_counter() - t, time.process_time() - c)"
)


def main(argv: list[str] | None = None) -> int:
    from infra.lambda_python import find_python313
    from infra.layer_bundling import build_layer

    python313 = find_python313()
    with tempfile.TemporaryDirectory(prefix="layer-bench-") as tmp:
        shipped = Path(tmp) / "arm64"
        started = time.monotonic()
        unzipped = build_layer(shipped)
        build_s = time.monotonic() - started
        files = sum(1 for p in shipped.rglob("*") if p.is_file())
        zipped = Path(shutil.make_archive(str(Path(tmp) / "layer"), "zip", shipped)).stat().st_size

        local = Path(tmp) / "host"
        build_layer(local, platform=HOST_PLATFORM[platform.machine()])
        no_bytecode = Path(tmp) / "host-source-only"
        shutil.copytree(local, no_bytecode, ignore=shutil.ignore_patterns("__pycache__"))
        samples = cold_imports(python313, {"with": local / "python", "without": no_bytecode / "python"})

    consumer, presign = median(samples[("consumer", "with")]), median(samples[("presign", "with")])
    rows = [
        {
            "metric": "Lambda layer, unzipped (mlflow-skinny, sagemaker-mlflow, powertools, boto3, library, .pyc)",
            "ours": round(unzipped / 1e6, 1),
            "unit": "MB",
            "target": 150.0,
            "note": f"{files} files; Lambda allows {LAMBDA_UNZIPPED_LIMIT_MB:.0f} MB for function + layers",
        },
        {"metric": "Lambda layer, zipped", "ours": round(zipped / 1e6, 1), "unit": "MB"},
        {"metric": "layer build time (pip + compileall, warm cache)", "ours": round(build_s, 1), "unit": "s"},
    ]
    for name in ("consumer", "presign"):
        rows.append(
            {
                "metric": f"{name} handler cold import, Python 3.13, layer with bytecode (baseline: without)",
                "ours": round(median(samples[(name, "with")]), 2),
                "baseline": round(median(samples[(name, "without")]), 2),
                "unit": "s",
                "target": COLD_IMPORT_TARGET_S,
                "note": f"median of {IMPORT_RUNS} fresh interpreters, {platform.machine()}",
            }
        )
        rows.append(
            {
                "metric": f"{name} handler cold import CPU time, Python 3.13, with bytecode (baseline: without)",
                "ours": round(median(samples[(name, "with", "cpu")]), 2),
                "baseline": round(median(samples[(name, "without", "cpu")]), 2),
                "unit": "s",
                "note": "process CPU time: what the import costs without waiting for a core",
            }
        )
    write_result(
        "layer",
        "Lambda layer",
        "make bench  (python -m bench.bench_layer)",
        rows,
        runs=IMPORT_RUNS,
        extra={"python": str(python313)},
    )
    if max(consumer, presign) >= COLD_IMPORT_TARGET_S:
        print(f"cold import over the {COLD_IMPORT_TARGET_S} s target (see the CPU-time rows on a shared machine)")
    return 0


def cold_imports(python: Path, layers: dict[str, Path]) -> dict[tuple[str, ...], list[float]]:
    """(handler, variant) and (handler, variant, "cpu") -> import seconds over IMPORT_RUNS fresh interpreters,
    variants interleaved."""
    samples: dict[tuple[str, ...], list[float]] = {}
    for _ in range(IMPORT_RUNS):
        for handler in ("consumer", "presign"):
            for variant, site in layers.items():
                env = {
                    "PYTHONPATH": f"{REPO / 'functions' / handler}:{site}",
                    "PATH": "/usr/bin:/bin",
                    "HOME": str(site.parent),
                    "PYTHONDONTWRITEBYTECODE": "1",  # /opt is read-only in Lambda: nothing compiled is kept
                    **(PRESIGN_ENV if handler == "presign" else {}),
                }
                out = subprocess.run(
                    [str(python), "-S", "-c", PROBE], env=env, capture_output=True, text=True, check=True
                )
                wall, cpu = (float(value) for value in out.stdout.strip().splitlines()[-1].split())
                samples.setdefault((handler, variant), []).append(wall)
                samples.setdefault((handler, variant, "cpu"), []).append(cpu)
    return samples


if __name__ == "__main__":
    sys.exit(main())
