"""The litellm config lines that turn our callback on, and merging them into a user's existing config file.

Replaces the workshop's `manage-mlflow.sh update-config`: the merge adds our callback next to any callbacks already
configured and sets the queue URL under `environment_variables`, leaving every other setting as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
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

    YAML comments are not kept by the round trip, so the old file is saved first: as `<name>.bak` the first time,
    which is never overwritten (it holds the user's original, comments included), and as `<name>.bak.<time>` on
    later runs that change something. A run that changes nothing writes nothing. The new file replaces the old one
    atomically. Every path that cannot be used is a `ConfigMergeError` (one line), the file untouched.
    """
    path = Path(path)
    original = _read_existing(path)
    document: Any = None
    if original is not None:
        try:
            document = yaml.safe_load(original)
        except yaml.YAMLError as exc:
            problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigMergeError(f"{path} is not valid YAML: {problem}") from None
        if document is not None and not isinstance(document, dict):
            raise ConfigMergeError(f"{path} must hold a YAML mapping at the top level")
    merged = yaml.safe_dump(merge_into(document, queue_url, extra_env), sort_keys=False)
    if original == merged:
        return None
    backup = _backup(path, original) if original is not None else None
    _replace(path, merged)
    return backup


def _read_existing(path: Path) -> str | None:
    """The config's text, None if there is none yet; a path that cannot be a config file is refused."""
    if path.is_dir():
        raise ConfigMergeError(f"{path} is a directory: give the path of a litellm config file")
    if not path.parent.is_dir():
        raise ConfigMergeError(f"{path.parent} does not exist: create the directory first or choose another path")
    if not path.exists():
        return None
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigMergeError(f"{path} is not UTF-8 text, so it cannot be a litellm config file") from None
    except OSError as exc:
        raise ConfigMergeError(f"{path} cannot be read: {exc.strerror or type(exc).__name__}") from None


def _backup(path: Path, original: str) -> Path:
    first = path.with_name(path.name + ".bak")
    target = first if not first.exists() else path.with_name(f"{path.name}.bak.{time.strftime('%Y%m%dT%H%M%S')}")
    counter = 1
    while target != first and target.exists():
        target = path.with_name(f"{path.name}.bak.{time.strftime('%Y%m%dT%H%M%S')}.{counter}")
        counter += 1
    try:
        with open(target, "x", encoding="utf-8") as handle:
            handle.write(original)
        shutil.copymode(path, target)
    except OSError as exc:
        raise ConfigMergeError(f"cannot keep a backup at {target}: {exc.strerror or type(exc).__name__}") from None
    return target


def _replace(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file beside it, so a failure leaves the old file whole."""
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise ConfigMergeError(f"cannot write in {path.parent}: {exc.strerror or type(exc).__name__}") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        if path.exists():
            shutil.copymode(path, temporary)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise ConfigMergeError(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None
