"""Reading what the callback put on a queue: a message holds one event or several packed ones (events.py)."""

from __future__ import annotations

import base64
import gzip

from litellm_mlflow import events


def message_events(message: dict) -> list[events.LLMCallEvent]:
    """Every event of one received message (SendMessage form), in order; fails the test on an unreadable one."""
    parts = events.decode_message(message["Body"], message.get("MessageAttributes"))
    assert all(part.error is None for part in parts), [part.error for part in parts]
    return [part.event for part in parts]


def body_text(message: dict) -> str:
    """The message's plain text (gunzipped when compressed): what a credential check must search."""
    body = message["Body"]
    return gzip.decompress(base64.b64decode(body)).decode() if body.startswith("H4sI") else body


def all_events(messages: list[dict]) -> list[events.LLMCallEvent]:
    return [event for message in messages for event in message_events(message)]
