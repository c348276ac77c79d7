"""What the sender keeps when its buffer is full (SQS down for minutes): the cheap, important part of each event.

Up to `capacity` events are kept whole. Beyond that, events are kept without their prompts and responses (identity,
model, tokens, cost, status and error stay; `content_logged` is False so MLflow shows why) for another `capacity`
events, which take a fraction of the memory. Beyond that only failures are kept, for another quarter of `capacity`;
everything else is dropped. Every degraded or dropped event is counted and reported loudly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litellm_mlflow.events import CONTENT_KEYS, DROPPED_TOP_LEVEL_KEYS

_HEAVY_KEYS = frozenset(CONTENT_KEYS) | DROPPED_TOP_LEVEL_KEYS


def without_content(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload without prompts, responses and what MLflow never needs; one shallow pass, no copying of values."""
    slim = {key: value for key, value in payload.items() if key not in _HEAVY_KEYS}
    slim["content_logged"] = False
    return slim


class OverflowPolicy:
    """Decides, from the buffer's length, whether an event is kept whole, kept without content, or dropped."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.slim_limit = 2 * capacity
        self.failure_limit = self.slim_limit + max(1, capacity // 4)

    def admit(self, buffered: int, payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The payload to buffer (itself or a slim copy), or None to drop it."""
        if buffered < self.capacity:
            return payload
        if buffered < self.slim_limit or (buffered < self.failure_limit and payload.get("status") == "failure"):
            return without_content(payload)
        return None
