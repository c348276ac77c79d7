"""LiteLLM's own privacy switches, applied to our callback exactly as to its built-in loggers, on every path.

LiteLLM redacts the StandardLoggingPayload for a CustomLogger on the success path only (and only some of the
switches); a failure event arrives with the prompt in clear. So the callback decides itself, per event, from:
- `litellm.turn_off_message_logging`, the request's dynamic `turn_off_message_logging` (per-key / per-team
  `metadata.logging` callback_vars) and the enable/disable-redaction headers, all through LiteLLM's own
  `should_redact_message_logging`;
- the logger's `turn_off_message_logging` / `message_logging` attributes and `callback_settings.<our name>`;
- `litellm.redact_user_api_key_info`: every `user_api_key*` metadata field removed, as LiteLLM's loggers do.
Each check is a few dictionary lookups: the hook stays O(1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import litellm

from litellm_mlflow.events import CONTENT_KEYS

try:
    from litellm.litellm_core_utils.redact_messages import should_redact_message_logging
except ImportError:  # older LiteLLM: the global switch and the dynamic parameter are read directly below
    should_redact_message_logging = None

# The names a user may give our callback under `callback_settings`.
CALLBACK_NAMES = ("litellm_mlflow", "litellm-mlflow", "litellm_mlflow.callback.sqs_logger", "sqs_logger")
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})


def message_logging_off(kwargs: Mapping[str, Any], callback: Any) -> bool:
    """True when this call's prompt and response must not leave the process."""
    if getattr(callback, "turn_off_message_logging", False) is True:
        return True
    if getattr(callback, "message_logging", True) is not True:
        return True
    settings = getattr(litellm, "callback_settings", None)
    if isinstance(settings, Mapping):
        for name in CALLBACK_NAMES:
            ours = settings.get(name)
            if isinstance(ours, Mapping) and (
                _is_false(ours.get("message_logging")) or _is_true(ours.get("turn_off_message_logging"))
            ):
                return True
    if should_redact_message_logging is not None:
        try:
            return bool(should_redact_message_logging(kwargs if isinstance(kwargs, dict) else dict(kwargs)))
        except Exception:  # LiteLLM's helper on an unexpected shape: fall back to the global switch
            pass
    dynamic = kwargs.get("standard_callback_dynamic_params")
    if isinstance(dynamic, Mapping) and dynamic.get("turn_off_message_logging") is not None:
        return _is_true(dynamic.get("turn_off_message_logging"))
    return litellm.turn_off_message_logging is True


def apply(event: dict[str, Any], kwargs: Mapping[str, Any], callback: Any) -> dict[str, Any]:
    """`event` (our own shallow copy) with content and key identity removed where LiteLLM's switches say so."""
    if message_logging_off(kwargs, callback):
        for key in CONTENT_KEYS:
            event.pop(key, None)
        event["content_logged"] = False
    if getattr(litellm, "redact_user_api_key_info", False) is True:
        metadata = event.get("metadata")
        if isinstance(metadata, Mapping):
            metadata = _without_key_info(metadata)
            if isinstance(metadata.get("requester_metadata"), Mapping):
                metadata["requester_metadata"] = _without_key_info(metadata["requester_metadata"])
            event["metadata"] = metadata
    return event


def _without_key_info(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in metadata.items() if not str(key).startswith("user_api_key")}


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"))


def _is_false(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.strip().lower() in _FALSE_WORDS)
