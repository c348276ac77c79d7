"""Packing encoded events into SQS messages, and messages into `SendMessageBatch` calls within SQS's limits.

Messages: up to `events_per_message` small events share one packed message (`events.pack_events`: botocore's CPU
per request, the sender's largest cost after encoding, is then paid once per ~100 events instead of 10); a large or
already compressed event, or a message put back after an error, travels alone. Calls: 10 messages, 1 MiB in total.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

logger = logging.getLogger(__name__)

SQS_MAX_BATCH_ENTRIES = 10
SQS_MAX_BATCH_BYTES = 1_048_576  # the sum of all entries of one SendMessageBatch
_HEADER_ALLOWANCE = 256  # a packed message's header line and attributes, beside its events' text


class Encoded(Protocol):
    """What the encode function returns (`events.EncodedMessage` satisfies it)."""

    body: str
    attributes: dict[str, dict[str, str]]
    size: int
    events: int


@dataclass
class Entry:
    """One SQS message on its way (one event, or several packed: `parts` holds each alone, so a message SQS refuses
    can be split); `sender_faults` counts how often SQS refused it as malformed."""

    event_id: str
    message: Encoded
    sender_faults: int = 0
    parts: tuple[Entry, ...] = field(default=())
    packable: bool = True  # False once packing it failed: it travels alone

    @property
    def events(self) -> int:
        return len(self.parts) or 1

    def request_entry(self, entry_id: str) -> dict[str, object]:
        return {"Id": entry_id, "MessageBody": self.message.body, "MessageAttributes": self.message.attributes}


class MessagePacker:
    """Turns one-event entries (from `next_entry`) into messages of up to `max_events` events and `max_bytes` of
    text. `packable(message)` says whether an event may share a message; `pack(messages)` builds the message.
    Used by the sender's one dispatcher thread only (it keeps the entry that did not fit for the next message)."""

    def __init__(
        self,
        pack: Callable[[list[Encoded]], Encoded] | None,
        packable: Callable[[Encoded], bool],
        max_events: int,
        max_bytes: int,
    ) -> None:
        self._pack = pack
        self._packable = packable
        self.max_events = max_events if pack is not None else 1
        self._max_text = max(0, max_bytes - _HEADER_ALLOWANCE)
        self._carry: list[Entry] = []  # taken from the buffer, not yet in a message (sent first, in order)

    @property
    def holding(self) -> bool:
        """Events taken from the buffer that did not fit the last message wait here for the next one."""
        return bool(self._carry)

    def next_message(self, next_entry: Callable[[], Entry | None]) -> Entry | None:
        """The next message to send, or None when nothing is buffered."""
        if self.max_events == 1 and not self._carry:
            return next_entry()
        group: list[Entry] = []
        text = 0
        while len(group) < self.max_events:
            entry = self._carry.pop(0) if self._carry else next_entry()
            if entry is None:
                break
            if self._alone(entry) or (group and text + entry.message.size > self._max_text):
                if not group:
                    return entry
                self._carry.insert(0, entry)
                break
            group.append(entry)
            text += entry.message.size
        if len(group) <= 1:
            return group[0] if group else None
        assert self._pack is not None
        try:
            message = self._pack([entry.message for entry in group])
        except Exception:  # a packing bug must not lose the events: they go one per message instead
            logger.exception("litellm-mlflow: could not pack %d events; sending them one per message", len(group))
            self._carry[:0] = [replace(entry, packable=False) for entry in group[1:]]
            return group[0]
        return Entry(",".join(entry.event_id for entry in group), message, parts=tuple(group))

    def _alone(self, entry: Entry) -> bool:
        if entry.parts or not entry.packable:
            return True
        try:
            return not self._packable(entry.message) or entry.message.size > self._max_text
        except Exception:  # e.g. an encode function whose result cannot be packed: send it as it is
            return True


def pack_batch(carry: Entry | None, next_entry: Callable[[], Entry | None]) -> tuple[list[Entry], Entry | None]:
    """Up to 10 entries whose sizes sum to at most 1 MiB, starting with `carry`; `next_entry()` returns None when
    nothing is left. The first entry that does not fit is returned as the next batch's carry."""
    batch: list[Entry] = []
    total = 0
    while len(batch) < SQS_MAX_BATCH_ENTRIES:
        if carry is not None:
            entry, carry = carry, None
        else:
            entry = next_entry()
            if entry is None:
                break
        if batch and total + entry.message.size > SQS_MAX_BATCH_BYTES:
            return batch, entry
        batch.append(entry)
        total += entry.message.size
    return batch, carry
