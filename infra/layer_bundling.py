"""The consumer/presign Lambda layer, built on this machine with pip (no Docker).

`pip --platform manylinux2014_aarch64 --only-binary=:all:` fetches the arm64 cp313 wheels whatever the host is,
so a laptop or CI runner builds the same layer Lambda runs. The pins live in `layers/requirements.txt` (a uv lock
with hashes, boto3/botocore/s3transfer left out because the runtime ships them); installing it with `--no-deps`
means exactly the locked set lands in the layer. The `litellm_mlflow` package is copied in beside them.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYER_DIR = REPO_ROOT / "layers"
REQUIREMENTS = LAYER_DIR / "requirements.txt"
LIBRARY_DIR = REPO_ROOT / "litellm_mlflow"
PIP_PLATFORM_ARGS = (
    "--platform",
    "manylinux2014_aarch64",
    "--implementation",
    "cp",
    "--python-version",
    "3.13",
    "--only-binary=:all:",
)
# Bump when the bundling steps change, so CDK rebuilds the asset instead of reusing a stale one.
BUNDLER_VERSION = "1"
LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024  # Lambda: function + all layers, unzipped
LAYER_BUDGET_BYTES = 150_000_000  # our own budget, well under the limit, leaving room for the function code


class LayerBundlingError(RuntimeError):
    """pip failed or the layer outgrew its budget; the message carries pip's own output."""


def _library_files(library_dir: Path) -> list[Path]:
    return sorted(p for p in library_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


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


def build_layer(output_dir: Path) -> int:
    """Install the locked wheels plus the library into `output_dir/python`; return the unzipped size in bytes."""
    target = output_dir / "python"
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--no-compile",  # .pyc built by the host's Python would be dead weight for 3.13
        "--require-hashes",
        *PIP_PLATFORM_ARGS,
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
    shutil.copytree(LIBRARY_DIR, target / LIBRARY_DIR.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
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
