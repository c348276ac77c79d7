"""Lambda layer size and the consumer's cold import.

Builds the real arm64 layer the CDK app ships (pip, no Docker) and reports its unzipped and zipped size against
Lambda's limits; then installs the layer's packages (mlflow-skinny, not the full mlflow of the dev venv) into a
scratch virtualenv for this machine and times a fresh `import handler` of the consumer, as a cold start does.
`python -m bench.bench_layer` (needs PyPI, as `make synth` does)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import median, write_result

REPO = Path(__file__).resolve().parents[1]
LAYER_PACKAGES = ["mlflow-skinny==3.17.2", "sagemaker-mlflow==0.5.0", "aws-lambda-powertools==3.37.0", "boto3"]
IMPORT_RUNS = 5

LAMBDA_UNZIPPED_LIMIT_MB = 250.0


def main(argv: list[str] | None = None) -> int:
    from infra.layer_bundling import build_layer

    with tempfile.TemporaryDirectory(prefix="layer-bench-") as tmp:
        started = time.monotonic()
        unzipped = build_layer(Path(tmp) / "layer")
        build_s = time.monotonic() - started
        archive = shutil.make_archive(str(Path(tmp) / "layer"), "zip", Path(tmp) / "layer")
        zipped = Path(archive).stat().st_size
    import_s = cold_import_seconds()
    rows = [
        {
            "metric": "Lambda layer, unzipped (mlflow-skinny, sagemaker-mlflow, powertools, library)",
            "ours": round(unzipped / 1e6, 1),
            "unit": "MB",
            "target": 150.0,
            "note": f"Lambda allows {LAMBDA_UNZIPPED_LIMIT_MB:.0f} MB for function + layers",
        },
        {"metric": "Lambda layer, zipped", "ours": round(zipped / 1e6, 1), "unit": "MB"},
        {"metric": "layer build time (pip, warm cache)", "ours": round(build_s, 1), "unit": "s"},
        {
            "metric": "consumer handler cold import (layer's packages)",
            "ours": round(import_s, 2),
            "unit": "s",
            "note": f"median of {IMPORT_RUNS} fresh interpreters on this machine, x86_64 Python 3.11",
        },
    ]
    write_result("layer", "Lambda layer", "make bench  (python -m bench.bench_layer)", rows, runs=1)
    return 0


def cold_import_seconds() -> float:
    """Median time to import functions/consumer/handler.py in a fresh interpreter with only the layer's packages."""
    uv = Path(sys.executable).with_name("uv")
    with tempfile.TemporaryDirectory(prefix="layer-venv-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([str(uv), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
        python = venv / "bin" / "python"
        subprocess.run([str(uv), "pip", "install", "--quiet", "--python", str(python), *LAYER_PACKAGES], check=True)
        probe = "import time; t = time.perf_counter(); import handler; print(time.perf_counter() - t)"
        env = {"PYTHONPATH": f"{REPO / 'functions' / 'consumer'}:{REPO}", "PATH": "/usr/bin:/bin", "HOME": tmp}
        samples = []
        for _ in range(IMPORT_RUNS):
            out = subprocess.run([str(python), "-c", probe], env=env, capture_output=True, text=True, check=True)
            samples.append(float(out.stdout.strip().splitlines()[-1]))
    return median(samples)


if __name__ == "__main__":
    sys.exit(main())
