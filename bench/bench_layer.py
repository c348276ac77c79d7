"""Lambda layer size: build the real arm64 layer the CDK app ships (pip, no Docker) and report its unzipped and zipped
size against Lambda's limits. `python -m bench.bench_layer` (needs PyPI, as `make synth` does)."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import write_result

LAMBDA_UNZIPPED_LIMIT_MB = 250.0


def main(argv: list[str] | None = None) -> int:
    from infra.layer_bundling import build_layer

    with tempfile.TemporaryDirectory(prefix="layer-bench-") as tmp:
        started = time.monotonic()
        unzipped = build_layer(Path(tmp) / "layer")
        build_s = time.monotonic() - started
        archive = shutil.make_archive(str(Path(tmp) / "layer"), "zip", Path(tmp) / "layer")
        zipped = Path(archive).stat().st_size
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
    ]
    write_result("layer", "Lambda layer", "make bench  (python -m bench.bench_layer)", rows, runs=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
