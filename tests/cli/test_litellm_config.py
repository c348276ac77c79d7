from __future__ import annotations

import pytest
import yaml

from litellm_mlflow.cli.litellm_config import CALLBACK, ConfigMergeError, config_snippet, merge_into, write_merged

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
