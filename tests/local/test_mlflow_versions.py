"""Which MLflow server versions the consumer tests run against, and where their interpreters come from."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from packaging.version import InvalidVersion

from litellm_mlflow.local.mlflow_versions import (
    MATRIX_VERSIONS,
    VERSIONS_ENV,
    all_versions,
    pinned_version,
    selected_versions,
    server_python,
)


def test_default_is_every_version_sagemaker_runs_plus_the_pin():
    assert selected_versions({}) == all_versions() == (*MATRIX_VERSIONS, pinned_version())
    assert "3.0.1" in MATRIX_VERSIONS and any(v.startswith("3.10.") for v in MATRIX_VERSIONS)


def test_a_comma_list_and_the_pinned_alias():
    assert selected_versions({VERSIONS_ENV: "pinned"}) == (pinned_version(),)
    assert selected_versions({VERSIONS_ENV: "3.0.1, pinned,3.0.1"}) == ("3.0.1", pinned_version())
    with pytest.raises(InvalidVersion):
        selected_versions({VERSIONS_ENV: "3.0.x"})


def test_the_pinned_server_runs_in_this_interpreter_others_in_their_cached_venv(tmp_path, monkeypatch):
    monkeypatch.setenv("LITELLM_MLFLOW_SERVER_CACHE", str(tmp_path))
    assert server_python(pinned_version()) == Path(sys.executable)
    (tmp_path / "3.0.1" / "bin").mkdir(parents=True)
    (tmp_path / "3.0.1" / ".complete").touch()
    assert server_python("3.0.1") == tmp_path / "3.0.1" / "bin" / "python"  # built once, then reused
