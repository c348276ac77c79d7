"""The consumer/presign Lambda layer, built on this machine with pip (no Docker).

`pip --platform manylinux2014_aarch64 --only-binary=:all:` fetches the arm64 cp313 wheels whatever the host is,
so a laptop or CI runner builds the same layer Lambda runs. The pins live in `layers/requirements.txt` (a uv lock
with hashes, boto3/botocore included: the runtime's own boto3 is not ours to choose and may lack an API presign
calls); installing it with `--no-deps` means exactly the locked set lands in the layer. Only the `litellm_mlflow`
modules the Lambdas import are copied in beside them (LAYER_MODULES), not the proxy, CLI or local-stack code.

`/opt` is read-only in Lambda, so a layer without bytecode recompiles every module on every cold start. The layer
is compiled here by a CPython 3.13 (the Lambda runtime's version; bytecode is version-specific, not
architecture-specific) with unchecked-hash pycs, which the importer uses without comparing source timestamps.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from infra.lambda_python import LAMBDA_PYTHON, NoLambdaPython, find_python313

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYER_DIR = REPO_ROOT / "layers"
REQUIREMENTS = LAYER_DIR / "requirements.txt"
LIBRARY_DIR = REPO_ROOT / "litellm_mlflow"
# What the consumer and presign Lambdas import from the library (tests/infra/test_layer.py checks the closure).
LAYER_MODULES = (
    "__init__.py",
    "events.py",
    "redaction.py",
    "mlflow_target.py",
    "usage_metrics.py",
    "sink",
    "presign",
    "rollup",
)
LAMBDA_PLATFORM = "manylinux2014_aarch64"
# Bump when the bundling steps change, so CDK rebuilds the asset instead of reusing a stale one.
BUNDLER_VERSION = "2"
LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024  # Lambda: function + all layers, unzipped
LAYER_BUDGET_BYTES = 150_000_000  # our own budget, well under the limit, leaving room for the function code


class LayerBundlingError(RuntimeError):
    """pip failed or the layer outgrew its budget; the message carries pip's own output."""


def _library_files(library_dir: Path) -> list[Path]:
    """The library files that go into the layer (sources only, no caches)."""
    files: list[Path] = []
    for name in LAYER_MODULES:
        path = library_dir / name
        candidates: Iterator[Path] = path.rglob("*") if path.is_dir() else iter([path])
        files.extend(p for p in candidates if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    return sorted(files)


def layer_source_hash(requirements: Path = REQUIREMENTS, library_dir: Path = LIBRARY_DIR) -> str:
    """Hash of everything that decides the layer's content: the lock, the library sources, the bundler."""
    digest = hashlib.sha256(BUNDLER_VERSION.encode())
    digest.update(requirements.read_bytes())
    for path in _library_files(library_dir):
        digest.update(b"\0" + path.relative_to(library_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def directory_size_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def copy_library(target: Path, library_dir: Path = LIBRARY_DIR) -> None:
    """Copy the Lambda-side modules of the library (LAYER_MODULES) into `target/litellm_mlflow`."""
    for path in _library_files(library_dir):
        destination = target / library_dir.name / path.relative_to(library_dir)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)


def compile_bytecode(target: Path, python: Path) -> None:
    """Byte-compile everything under `target` with `python` (unchecked-hash: valid whatever the files' mtimes)."""
    command = [str(python), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(target)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LayerBundlingError(f"{python} could not compile the layer:\n{(result.stdout + result.stderr)[-4000:]}")


def build_layer(output_dir: Path, platform: str = LAMBDA_PLATFORM) -> int:
    """Install the locked wheels plus the library into `output_dir/python`, compiled by Python 3.13; return the
    unzipped size in bytes. `platform` is the Lambda's (arm64) except for benchmarks that import the layer here."""
    try:
        python313 = find_python313()
    except NoLambdaPython as error:
        raise LayerBundlingError(str(error)) from None
    target = output_dir / "python"
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--no-compile",  # the host's Python may not be 3.13; compile_bytecode does it with 3.13 below
        "--require-hashes",
        "--platform",
        platform,
        "--implementation",
        "cp",
        "--python-version",
        LAMBDA_PYTHON,
        "--only-binary=:all:",
        "--target",
        str(target),
        "-r",
        str(REQUIREMENTS),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LayerBundlingError(
            f"pip could not build the layer (exit {result.returncode}):\n{result.stderr.strip()[-4000:]}"
        )
    # Console scripts point at the build host's interpreter; nothing in Lambda runs them.
    shutil.rmtree(target / "bin", ignore_errors=True)
    copy_library(target)
    compile_bytecode(target, python313)
    size = directory_size_bytes(output_dir)
    if size > LAYER_BUDGET_BYTES:
        raise LayerBundlingError(
            f"layer is {size / 1e6:.1f} MB unzipped, over the {LAYER_BUDGET_BYTES / 1e6:.0f} MB budget "
            f"(Lambda allows {LAMBDA_UNZIPPED_LIMIT_BYTES / 1e6:.0f} MB for function + layers)"
        )
    return size


@jsii.implements(ILocalBundling)
class PipLayerBundler:
    """CDK's local-bundling hook: always bundles here, so CDK never falls back to Docker."""

    def try_bundle(self, output_dir: str, _options: BundlingOptions | None = None, **_kwargs: object) -> bool:
        # jsii passes the BundlingOptions struct positionally; nothing in it matters to a local pip build.
        build_layer(Path(output_dir))
        return True


def layer_code() -> lambda_.Code:
    """The layer asset. Its hash is computed from the inputs, so an unchanged lock + library is not rebuilt."""
    return lambda_.Code.from_asset(
        str(LAYER_DIR),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=layer_source_hash(),
        exclude=["build", "*.in"],
        bundling=BundlingOptions(
            # Never pulled: PipLayerBundler always succeeds or raises.
            image=DockerImage.from_registry("local-bundling-only"),
            local=PipLayerBundler(),
        ),
    )
