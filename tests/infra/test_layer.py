"""The Lambda layer: inputs decide its hash; the real build (pip, arm64 wheels, no Docker, bytecode compiled by
Python 3.13) holds what the handlers import and nothing of the proxy, CLI or local stack."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import botocore
import pytest

from infra import layer_bundling
from infra.layer_bundling import LAYER_BUDGET_BYTES, directory_size_bytes, layer_source_hash
from infra.synth import layer_asset_dir
from infra.synth import main as synth_main
from tests.infra.client_calls import botocore_operations, client_method_calls, missing_methods
from tests.infra.import_closure import library_files_reached, resolvable_in, third_party_imports

REPO_ROOT = layer_bundling.REPO_ROOT
HANDLERS = [REPO_ROOT / "functions" / name / "handler.py" for name in ("consumer", "presign", "rollup")]


def layer_pins() -> dict[str, str]:
    return dict(
        re.findall(r"^([a-z0-9][a-z0-9._-]*)==([^ \\\n]+)", layer_bundling.REQUIREMENTS.read_text(), flags=re.M)
    )


def handler_code_files() -> list[Path]:
    return [*HANDLERS, *sorted(library_files_reached(REPO_ROOT, HANDLERS))]


def test_layer_library_is_exactly_what_the_handlers_import() -> None:
    reached = {path.relative_to(layer_bundling.LIBRARY_DIR) for path in library_files_reached(REPO_ROOT, HANDLERS)}
    shipped = {
        path.relative_to(layer_bundling.LIBRARY_DIR)
        for path in layer_bundling._library_files(layer_bundling.LIBRARY_DIR)
    }
    assert reached <= shipped, (
        f"the handlers import modules the layer leaves out: {sorted(map(str, reached - shipped))}"
    )
    assert not {part for path in shipped for part in path.parts} & {"local", "cli", "publish", "callback.py"}


def test_layer_botocore_has_every_client_method_the_handlers_call() -> None:
    pins = layer_pins()
    # The dev venv carries the layer's botocore, so its service models are the ones Lambda will load.
    assert pins["botocore"] == botocore.__version__
    calls = client_method_calls(handler_code_files())
    assert "create_presigned_mlflow_app_url" in calls["sagemaker"]
    data_dir = Path(botocore.__file__).parent / "data"
    assert missing_methods(calls, botocore_operations(data_dir, set(calls))) == []


def test_client_method_check_fails_for_a_botocore_without_the_app_api() -> None:
    calls = client_method_calls(handler_code_files())
    operations = botocore_operations(Path(botocore.__file__).parent / "data", set(calls))
    operations["sagemaker"] -= {"create_presigned_mlflow_app_url"}  # what a runtime botocore before 1.42 lacks
    assert missing_methods(calls, operations) == ["sagemaker.create_presigned_mlflow_app_url (service.py)"]


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


def test_lock_pins_every_package_with_hashes_including_the_aws_sdk() -> None:
    pins = layer_pins()
    assert pins["mlflow-skinny"] == "3.17.2"
    assert pins["sagemaker-mlflow"] == "0.5.0"
    assert pins["aws-lambda-powertools"] == "3.37.0"
    assert tuple(int(part) for part in pins["botocore"].split(".")[:2]) >= (1, 42)
    assert pins["boto3"] == pins["botocore"]
    assert layer_bundling.REQUIREMENTS.read_text().count("--hash=sha256:") >= len(pins)


@pytest.mark.bundling
def test_make_synth_bundles_a_real_arm64_layer_under_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert synth_main(["--outdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    layer = layer_asset_dir(tmp_path, "LitellmMlflow") / "python"
    size = directory_size_bytes(layer.parent)
    assert f"layer unzipped: {size / 1e6:.1f} MB" in out
    assert "cfn-lint: 1 template(s) for us-east-1, 0 error(s)" in out  # tests/conftest.py sets AWS_REGION
    assert size < LAYER_BUDGET_BYTES
    for package in (
        "litellm_mlflow",
        "mlflow",
        "sagemaker_mlflow",
        "aws_lambda_powertools",
        "pydantic_core",
        "botocore",
    ):
        assert (layer / package).is_dir(), package
    assert (layer / "litellm_mlflow" / "events.py").is_file()
    assert not [p for p in ("local", "cli", "publish", "callback.py") if (layer / "litellm_mlflow" / p).exists()]
    assert not (layer / "bin").exists()
    native = [p.name for p in layer.rglob("*.so")]
    assert any("cpython-313-aarch64-linux-gnu" in name for name in native)
    assert not [name for name in native if "x86_64" in name]

    # Bytecode by 3.13 beside every module, so a cold start on read-only /opt compiles nothing.
    sources = [p for p in (layer / "litellm_mlflow").rglob("*.py")] + list(
        (layer / "mlflow" / "tracking").rglob("*.py")
    )
    assert sources
    assert not [s for s in sources if not (s.parent / "__pycache__" / f"{s.stem}.cpython-313.pyc").is_file()]
    assert not [p for p in layer.rglob("*.pyc") if ".cpython-313." not in p.name]

    # The botocore in the layer has every client method the handlers call.
    calls = client_method_calls(handler_code_files())
    assert missing_methods(calls, botocore_operations(layer / "botocore" / "data", set(calls))) == []

    # Everything the handlers import (through litellm_mlflow) is in the layer itself.
    needed = third_party_imports(REPO_ROOT, HANDLERS)
    assert "mlflow.tracking" in needed or "mlflow" in needed
    missing = {name: sorted(users) for name, users in needed.items() if not resolvable_in(layer, name)}
    assert missing == {}
