"""Find a CPython of the Lambda runtime's version (3.13) on this machine: the layer's bytecode is compiled by it and
the Lambda-side tests run on it (`make test`). Kept free of CDK imports so the Makefile can ask it cheaply."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

LAMBDA_PYTHON = "3.13"
PYTHON313_ENV = "LITELLM_MLFLOW_PYTHON313"


class NoLambdaPython(RuntimeError):
    """No usable Python 3.13 here; the message says how to get one."""


def _is_lambda_python(python: Path) -> bool:
    """True when `python` runs and is 3.13 (a pyenv shim for a version that is not selected fails here)."""
    probe = [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
    try:
        result = subprocess.run(probe, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and result.stdout.strip() == LAMBDA_PYTHON


def find_python313() -> Path:
    """$LITELLM_MLFLOW_PYTHON313, else python3.13 on PATH, else the newest pyenv 3.13.x."""
    configured = os.environ.get(PYTHON313_ENV)
    candidates = [Path(configured)] if configured else []
    on_path = shutil.which(f"python{LAMBDA_PYTHON}")
    if on_path:
        candidates.append(Path(on_path))
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates.extend(sorted(pyenv_root.glob(f"versions/{LAMBDA_PYTHON}.*/bin/python{LAMBDA_PYTHON}"), reverse=True))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK) and _is_lambda_python(candidate):
            return candidate
    raise NoLambdaPython(
        f"no Python {LAMBDA_PYTHON} (the Lambda runtime's version) found: install one "
        f"(`pyenv install {LAMBDA_PYTHON}` or your OS's python{LAMBDA_PYTHON}) or set {PYTHON313_ENV} to its path"
    )


if __name__ == "__main__":
    try:
        print(find_python313())
    except NoLambdaPython as error:
        print(error, file=sys.stderr)
        sys.exit(1)
