"""The Lambda layer: inputs decide its hash; the real build (pip, arm64 wheels, no Docker) stays small."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from infra import layer_bundling
from infra.layer_bundling import LAYER_BUDGET_BYTES, directory_size_bytes, layer_source_hash
from infra.synth import layer_asset_dir
from infra.synth import main as synth_main
from tests.infra.import_closure import resolvable_in, third_party_imports

REPO_ROOT = layer_bundling.REPO_ROOT
HANDLERS = [REPO_ROOT / "functions" / "consumer" / "handler.py", REPO_ROOT / "functions" / "presign" / "handler.py"]
LAMBDA_RUNTIME_PROVIDES = {"boto3", "botocore"}


def test_layer_hash_follows_its_inputs_only(tmp_path: Path) -> None:
    library = tmp_path / "litellm_mlflow"
    shutil.copytree(layer_bundling.LIBRARY_DIR, library, ignore=shutil.ignore_patterns("__pycache__"))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(layer_bundling.REQUIREMENTS.read_text())
    original = layer_source_hash(requirements, library)
    (library / "__pycache__").mkdir(exist_ok=True)
    (library / "__pycache__" / "stale.pyc").write_bytes(b"ignored")
    assert layer_source_hash(requirements, library) == original

    (library / "events.py").write_text((library / "events.py").read_text() + "\n")
    edited_library = layer_source_hash(requirements, library)
    requirements.write_text(requirements.read_text() + "# changed\n")
    assert len({original, edited_library, layer_source_hash(requirements, library)}) == 3


def test_lock_pins_every_package_with_hashes_and_leaves_out_the_runtime_sdk() -> None:
    text = layer_bundling.REQUIREMENTS.read_text()
    pins = dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==([^ \\\n]+)", text, flags=re.M))
    assert pins["mlflow-skinny"] == "3.17.2"
    assert pins["sagemaker-mlflow"] == "0.5.0"
    assert pins["aws-lambda-powertools"] == "3.37.0"
    assert not {"boto3", "botocore", "s3transfer"} & set(pins)
    assert text.count("--hash=sha256:") >= len(pins)


@pytest.mark.bundling
def test_make_synth_bundles_a_real_arm64_layer_under_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert synth_main(["--outdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    layer = layer_asset_dir(tmp_path, "LitellmMlflow") / "python"
    size = directory_size_bytes(layer.parent)
    assert f"layer unzipped: {size / 1e6:.1f} MB" in out
    assert size < LAYER_BUDGET_BYTES
    for package in ("litellm_mlflow", "mlflow", "sagemaker_mlflow", "aws_lambda_powertools", "pydantic_core"):
        assert (layer / package).is_dir(), package
    assert (layer / "litellm_mlflow" / "events.py").is_file()
    assert not [p for p in ("boto3", "botocore", "s3transfer", "bin") if (layer / p).exists()]
    native = [p.name for p in layer.rglob("*.so")]
    assert any("cpython-313-aarch64-linux-gnu" in name for name in native)
    assert not [name for name in native if "x86_64" in name]
    assert not list(layer.rglob("__pycache__"))

    # Everything the two handlers import (through litellm_mlflow) is in the layer or in the Lambda runtime.
    needed = third_party_imports(REPO_ROOT, HANDLERS)
    assert "mlflow.tracking" in needed or "mlflow" in needed
    missing = {
        name: sorted(users)
        for name, users in needed.items()
        if name.split(".")[0] not in LAMBDA_RUNTIME_PROVIDES and not resolvable_in(layer, name)
    }
    assert missing == {}
