"""Packing entries into one SendMessageBatch: at most 10 entries and 1 MiB, an entry that does not fit carried."""

from __future__ import annotations

from dataclasses import dataclass

from litellm_mlflow.publish.batching import SQS_MAX_BATCH_BYTES, SQS_MAX_BATCH_ENTRIES, Entry, pack_batch


@dataclass
class Message:
    size: int
    body: str = "{}"
    attributes: dict = None


def source(sizes: list[int]):
    entries = [Entry(str(i), Message(size)) for i, size in enumerate(sizes)]
    return entries, lambda: entries.pop(0) if entries else None


def test_a_batch_holds_at_most_ten_entries() -> None:
    left, next_entry = source([100] * 25)
    batch, carry = pack_batch(None, next_entry)
    assert len(batch) == SQS_MAX_BATCH_ENTRIES and carry is None and len(left) == 15


def test_an_entry_that_would_pass_one_mebibyte_is_carried_to_the_next_batch() -> None:
    _, next_entry = source([400_000, 400_000, 400_000, 10])
    batch, carry = pack_batch(None, next_entry)
    assert [entry.event_id for entry in batch] == ["0", "1"] and carry.event_id == "2"
    assert sum(entry.message.size for entry in batch) <= SQS_MAX_BATCH_BYTES
    batch, carry = pack_batch(carry, next_entry)
    assert [entry.event_id for entry in batch] == ["2", "3"] and carry is None


def test_an_empty_source_gives_an_empty_batch() -> None:
    assert pack_batch(None, lambda: None) == ([], None)
