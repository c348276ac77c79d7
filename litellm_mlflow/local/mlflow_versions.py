"""MLflow server versions SageMaker runs, each in its own cached virtualenv, for the tests and the benchmarks.

SageMaker tracking servers run MLflow 3.0, serverless MLflow Apps the 3.x AWS picks (3.10 in recent reports); the
project pins the newest. A server of another version than this interpreter's is installed once with uv into
~/.cache/litellm-mlflow/mlflow-servers/<version> (override: LITELLM_MLFLOW_SERVER_CACHE) and reused afterwards.
Servers before 3.10 need `sqlalchemy<2.1` to start.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.version import Version

# A tracking server (3.0), an early MLflow App release (3.4), the newest 3.10.x (Apps today), and the pinned one.
MATRIX_VERSIONS = ("3.0.1", "3.4.0", "3.10.1")
VERSIONS_ENV = "LITELLM_MLFLOW_TEST_MLFLOW_VERSIONS"
PINNED_ALIAS = "pinned"


class ServerVenvError(RuntimeError):
    """A server virtualenv could not be built; the message carries uv's output."""


def pinned_version() -> str:
    """The MLflow this interpreter has (the project's pin)."""
    return importlib.metadata.version("mlflow")


def all_versions() -> tuple[str, ...]:
    return (*MATRIX_VERSIONS, pinned_version())


def selected_versions(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """The versions named by LITELLM_MLFLOW_TEST_MLFLOW_VERSIONS (comma list; `pinned` = this interpreter's), or all."""
    raw = ((environ if environ is not None else os.environ).get(VERSIONS_ENV) or "").strip()
    if not raw:
        return all_versions()
    chosen = [pinned_version() if item.strip() == PINNED_ALIAS else item.strip() for item in raw.split(",")]
    for item in chosen:
        Version(item)  # a typo fails loudly, not as a pip resolution error later
    return tuple(dict.fromkeys(item for item in chosen if item))


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "litellm-mlflow" / "mlflow-servers"
    return Path(os.environ.get("LITELLM_MLFLOW_SERVER_CACHE") or default)


def server_python(version: str, postgres: bool = False) -> Path:
    """An interpreter that runs `mlflow server` of exactly `version` (built on first use, then cached); `postgres`:
    one that also has a PostgreSQL driver (its own venv, for every version: the project's venvs do not have one)."""
    if version == pinned_version() and not postgres:
        return Path(sys.executable)
    target = cache_dir() / (f"{version}-postgres" if postgres else version)
    python = target / "bin" / "python"
    if (target / ".complete").exists():
        return python
    target.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed into place, so a half-built venv is never used.
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
    requirements = [f"mlflow=={version}"]
    if Version(version) < Version("3.10"):
        requirements.append("sqlalchemy<2.1")
    if postgres:
        requirements.append("psycopg2-binary")
    uv = _uv()
    try:
        _run([uv, "venv", "--quiet", "--python", sys.executable, str(staging)])
        _run([uv, "pip", "install", "--quiet", "--python", str(staging / "bin" / "python"), *requirements])
        (staging / ".complete").touch()
        if not (target / ".complete").exists():
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return python


def _uv() -> str:
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        raise ServerVenvError("uv is needed to install other MLflow server versions: `make venv` installs it")
    return found


def _run(cmd: list[str]) -> None:
    env = {**os.environ, "UV_SYSTEM_CERTS": os.environ.get("UV_SYSTEM_CERTS", "1")}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise ServerVenvError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
