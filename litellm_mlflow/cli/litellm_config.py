"""The litellm config lines that turn our callback on, and merging them into a user's existing config file.

Replaces the workshop's `manage-mlflow.sh update-config`: the merge adds our callback next to any callbacks already
configured and sets the queue URL under `environment_variables`, leaving every other setting as it was.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

CALLBACK = "litellm_mlflow.callback.sqs_logger"
QUEUE_ENV = "LITELLM_MLFLOW_QUEUE_URL"


class ConfigMergeError(ValueError):
    """The existing litellm config cannot take our lines (not YAML, or a section of the wrong type)."""


def config_snippet(queue_url: str, endpoint_url: str | None = None, region: str | None = None) -> str:
    """The YAML a user pastes into their litellm config."""
    env: dict[str, str] = {QUEUE_ENV: queue_url}
    if endpoint_url:
        env["AWS_ENDPOINT_URL_SQS"] = endpoint_url
    if region:
        env["AWS_REGION"] = region
    document = {"litellm_settings": {"callbacks": [CALLBACK]}, "environment_variables": env}
    return yaml.safe_dump(document, sort_keys=False)


def merge_into(document: dict[str, Any] | None, queue_url: str, extra_env: dict[str, str] | None = None) -> dict:
    """Return `document` with our callback and queue URL added; everything else kept in order."""
    merged: dict[str, Any] = dict(document or {})
    settings = merged.get("litellm_settings") or {}
    if not isinstance(settings, dict):
        raise ConfigMergeError("litellm_settings must be a mapping")
    callbacks = settings.get("callbacks") or []
    if isinstance(callbacks, str):
        callbacks = [callbacks]
    if not isinstance(callbacks, list):
        raise ConfigMergeError("litellm_settings.callbacks must be a name or a list of names")
    if CALLBACK not in callbacks:
        callbacks = [*callbacks, CALLBACK]
    merged["litellm_settings"] = {**settings, "callbacks": callbacks}
    env = merged.get("environment_variables") or {}
    if not isinstance(env, dict):
        raise ConfigMergeError("environment_variables must be a mapping")
    merged["environment_variables"] = {**env, QUEUE_ENV: queue_url, **(extra_env or {})}
    return merged


def write_merged(path: Path, queue_url: str, extra_env: dict[str, str] | None = None) -> Path | None:
    """Merge our lines into the config at `path` (created if missing); returns the backup of the old file, if any.

    YAML comments are not kept by the round trip, so the original is saved beside it as `<name>.bak` first.
    """
    path = Path(path)
    backup = None
    document: Any = None
    if path.exists():
        try:
            document = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigMergeError(f"{path} is not valid YAML: {exc}") from exc
        if document is not None and not isinstance(document, dict):
            raise ConfigMergeError(f"{path} must hold a YAML mapping at the top level")
        backup = path.with_name(path.name + ".bak")
        shutil.copy2(path, backup)
    merged = merge_into(document, queue_url, extra_env)
    path.write_text(yaml.safe_dump(merged, sort_keys=False))
    return backup
