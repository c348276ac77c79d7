"""Packing encoded events into `SendMessageBatch` calls within SQS's limits (10 entries, 1 MiB in total)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

SQS_MAX_BATCH_ENTRIES = 10
SQS_MAX_BATCH_BYTES = 1_048_576  # the sum of all entries of one SendMessageBatch


class Encoded(Protocol):
    """What the encode function returns (`events.EncodedMessage` satisfies it)."""

    body: str
    attributes: dict[str, dict[str, str]]
    size: int


@dataclass
class Entry:
    """One encoded event on its way to SQS; `sender_faults` counts how often SQS refused it as malformed."""

    event_id: str
    message: Encoded
    sender_faults: int = 0

    def request_entry(self, entry_id: str) -> dict[str, object]:
        return {"Id": entry_id, "MessageBody": self.message.body, "MessageAttributes": self.message.attributes}


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
