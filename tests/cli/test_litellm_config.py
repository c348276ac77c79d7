from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from litellm_mlflow.cli.litellm_config import CALLBACK, ConfigMergeError, config_snippet, merge_into, write_merged
from litellm_mlflow.local.stack_state import LocalStackState

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/litellm-mlflow-events"


def test_snippet_is_valid_yaml_with_callback_and_queue():
    document = yaml.safe_load(config_snippet(QUEUE, region="us-east-1"))
    assert document["litellm_settings"]["callbacks"] == [CALLBACK]
    assert document["environment_variables"] == {"LITELLM_MLFLOW_QUEUE_URL": QUEUE, "AWS_REGION": "us-east-1"}


def test_merge_keeps_existing_settings_and_callbacks():
    existing = {
        "model_list": [{"model_name": "m", "litellm_params": {"model": "openai/gpt-4o"}}],
        "litellm_settings": {"callbacks": "prometheus", "drop_params": True},
        "environment_variables": {"OTHER": "1"},
        "general_settings": {"master_key": "os.environ/KEY"},
    }
    merged = merge_into(existing, QUEUE)
    assert merged["litellm_settings"] == {"callbacks": ["prometheus", CALLBACK], "drop_params": True}
    assert merged["environment_variables"] == {"OTHER": "1", "LITELLM_MLFLOW_QUEUE_URL": QUEUE}
    assert merged["model_list"] == existing["model_list"]
    assert merged["general_settings"] == existing["general_settings"]
    assert list(merged) == list(existing)


def test_merge_is_idempotent():
    once = merge_into({}, QUEUE)
    assert merge_into(once, QUEUE) == once
    assert once["litellm_settings"]["callbacks"].count(CALLBACK) == 1


def test_write_merged_creates_backup_and_leaves_the_rest(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("# my config\nmodel_list:\n  - model_name: a\n    litellm_params: {model: openai/gpt-4o}\n")
    backup = write_merged(path, QUEUE)
    assert backup is not None and backup.read_text().startswith("# my config")
    document = yaml.safe_load(path.read_text())
    assert document["model_list"][0]["model_name"] == "a"
    assert document["litellm_settings"]["callbacks"] == [CALLBACK]


def test_write_merged_creates_a_missing_file(tmp_path):
    path = tmp_path / "new.yaml"
    assert write_merged(path, QUEUE) is None
    assert yaml.safe_load(path.read_text())["environment_variables"]["LITELLM_MLFLOW_QUEUE_URL"] == QUEUE


@pytest.mark.parametrize(
    ("text", "problem"),
    [("a: [unclosed", "not valid YAML"), ("- a\n- b\n", "mapping at the top level")],
)
def test_bad_existing_file_is_refused_and_untouched(tmp_path, text, problem):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigMergeError, match=problem):
        write_merged(path, QUEUE)
    assert path.read_text() == text


def test_wrong_section_types_are_named():
    with pytest.raises(ConfigMergeError, match="litellm_settings"):
        merge_into({"litellm_settings": ["x"]}, QUEUE)
    with pytest.raises(ConfigMergeError, match="callbacks"):
        merge_into({"litellm_settings": {"callbacks": {"a": 1}}}, QUEUE)


# ------------------------------------------------------------------------------------------ the real command


def _cli(tmp_path, target, queue: str = QUEUE) -> subprocess.CompletedProcess:
    state_dir = tmp_path / "stack"
    state_dir.mkdir(exist_ok=True)
    LocalStackState(mlflow_url="http://127.0.0.1:1", sqs_endpoint="http://127.0.0.1:2", queue_url=queue,
                    dlq_url=queue + "-dlq", proxy_url="http://127.0.0.1:3", master_key="sk-local",
                    experiment="e").save(state_dir)  # fmt: skip
    command = [sys.executable, "-m", "litellm_mlflow.cli.main", "config", "--local", str(state_dir), "--write"]
    return subprocess.run([*command, str(target)], capture_output=True, text=True, timeout=120, check=False)


def test_config_write_twice_keeps_the_users_original_with_its_comments(tmp_path):
    path = tmp_path / "config.yaml"
    original = "# my proxy, my comments\nmodel_list: []\nlitellm_settings:\n  callbacks: [langfuse]\n"
    path.write_text(original)
    first = _cli(tmp_path, path)
    assert first.returncode == 0, first.stderr
    after_first = path.read_text()
    assert _cli(tmp_path, path).returncode == 0  # same stack: nothing to change
    assert _cli(tmp_path, path, queue=QUEUE + "-moved").returncode == 0  # a new queue: the file changes again
    assert (tmp_path / "config.yaml.bak").read_text() == original
    [later] = tmp_path.glob("config.yaml.bak.*")
    assert later.read_text() == after_first
    assert yaml.safe_load(path.read_text())["litellm_settings"]["callbacks"] == ["langfuse", CALLBACK]


@pytest.mark.parametrize("case", ["directory", "not utf-8", "missing parent"])
def test_unusable_paths_are_one_line_errors_and_nothing_is_touched(tmp_path, case):
    target = {"directory": tmp_path / "confdir", "not utf-8": tmp_path / "latin1.yaml",
              "missing parent": tmp_path / "no" / "such" / "config.yaml"}[case]  # fmt: skip
    if case == "directory":
        target.mkdir()
    if case == "not utf-8":
        target.write_bytes("caf\xe9: 1\n".encode("latin-1"))
    before = sorted(p.name for p in tmp_path.rglob("*") if "stack" not in p.parts)
    result = _cli(tmp_path, target)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert str(target) in result.stderr or str(target.parent) in result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*") if "stack" not in p.parts) == before
    if case == "not utf-8":
        assert target.read_bytes() == "caf\xe9: 1\n".encode("latin-1")
