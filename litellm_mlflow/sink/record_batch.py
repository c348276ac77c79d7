"""An SQS batch's records as events, and the sink's per-event outcome back as per-record answers.

A record holds one event, or several packed ones (`events.decode_message`). The rules, per record:
- it is acknowledged only when each of its events is stored (now or by an earlier delivery) or in the DLQ;
- if any of its events failed for a reason that may pass (MLflow down, out of time), the whole record goes back to
  SQS (`batchItemFailures`) and nothing of it is dead-lettered now: redelivery is safe, since the sink recognises
  the traces it already stored (`WriteResult.already_stored`) and counts them once;
- an event that can never be stored (does not decode, or no trace can be built from it) is dead-lettered without
  the others: a packed record's poison events as one DLQ message of their own (one event: the one-event format;
  several: packed), with their reasons, while the others are stored; a one-event record as the original body. One
  DLQ message per record, so the DLQ takes a record's poison events all or none: a record handed back because the
  DLQ refused it never leaves a copy of some of its events there;
- records beyond the invocation's decoded-bytes budget are handed back undecoded (a record is decoded whole or not).
Counts are in events. `written` counts the stored events of acknowledged records only (stored now or by an earlier
delivery: the pipeline's throughput, as it was per record), so the events of a record handed back are counted once,
on the delivery that acknowledges it; usage figures (`usage_emf`) count only newly stored calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from litellm_mlflow.events import (
    MAX_EVENTS_PER_MESSAGE,
    DecodeLimits,
    EncodedMessage,
    EventDecodeError,
    LLMCallEvent,
    decode_message,
    one_event_message,
    pack_events,
)
from litellm_mlflow.sink.dead_letter import MAX_BODY_BYTES, MAX_REASON_CHARS, Rejected
from litellm_mlflow.sink.writer import WriteResult


@dataclass
class DecodedBatch:
    """The events to write (in order) and, for each, the index of its record and its packed text (None if alone)."""

    records: Sequence[Mapping[str, Any]]
    events: list[LLMCallEvent] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)
    texts: list[str | None] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)  # the event's place in its record
    rejected: list[tuple[int, Rejected]] = field(default_factory=list)  # (record index, a whole record to dead-letter)
    poison: list[Poison] = field(default_factory=list)  # events of packed records that can never be stored
    deferred: list[int] = field(default_factory=list)  # over the budget: handed back undecoded


@dataclass(frozen=True)
class Poison:
    """One event of a packed record that can never be stored: its record, its place there, its text and why."""

    owner: int
    number: int
    text: str
    reason: str


@dataclass
class Settled:
    """What the handler answers and reports."""

    failed_message_ids: list[str]
    written: int  # stored events of acknowledged records
    already_stored: int  # events an earlier delivery stored (not counted again)
    dead_lettered: int  # events (or unreadable records) now in the DLQ
    failed: int  # events (or undecoded records) handed back to SQS unstored
    events: int  # events read from the records
    retried: list[tuple[str, str, str]]  # (message id, event id, reason) of events that failed transiently
    rejected: list[Rejected]


def decode_records(records: Sequence[Mapping[str, Any]], limits: DecodeLimits, budget: int) -> DecodedBatch:
    """Every record's events; once `budget` decoded bytes are held, the remaining records are deferred."""
    batch = DecodedBatch(records)
    held = 0
    for index, record in enumerate(records):
        if held > budget:
            batch.deferred.append(index)
            continue
        try:
            parts = decode_message(record.get("body") or "", record.get("messageAttributes"), limits)
        except EventDecodeError as exc:
            batch.rejected.append((index, Rejected(record, f"undecodable: {exc}")))
            continue
        except Exception as exc:  # decode_message promises EventDecodeError only; a slip still fails one record
            batch.rejected.append((index, Rejected(record, f"undecodable: {type(exc).__name__}")))
            continue
        for number, part in enumerate(parts):
            if part.event is None:
                batch.poison.append(Poison(index, number, part.text or "", f"undecodable: {part.error}"))
                continue
            held += part.event.decoded_bytes
            batch.events.append(part.event)
            batch.owners.append(index)
            batch.texts.append(part.text)
            batch.numbers.append(number)
    return batch


def settle(batch: DecodedBatch, result: WriteResult, dead_letter: Callable[[list[Rejected]], set[str]]) -> Settled:
    """Per-record answers from the sink's per-event `result`; `dead_letter` sends rejected items and answers the
    message ids the DLQ now holds."""
    records = batch.records
    retry = set(batch.deferred)
    retried = []
    rejected = list(batch.rejected)
    poison = list(batch.poison)
    for index, reason in sorted(result.failed.items()):
        owner = batch.owners[index]
        if index in result.permanent:
            text = batch.texts[index]
            if text is None:
                rejected.append((owner, Rejected(records[owner], reason)))
            else:
                poison.append(Poison(owner, batch.numbers[index], text, reason))
            continue
        retry.add(owner)
        retried.append((_message_id(records[owner]), batch.events[index].event_id, reason))
    rejected += _poison_messages(records, poison)
    to_send = [item for owner, item in rejected if owner not in retry]
    stored = dead_letter(to_send) if to_send else set()
    for owner, item in rejected:
        if item.message_id not in stored:
            retry.add(owner)
    unstored = len(result.failed) - len(result.permanent & set(result.failed))
    unsent = sum(item.events for _, item in rejected if item.message_id not in stored)
    written = sum(1 for index, owner in enumerate(batch.owners) if owner not in retry and index not in result.failed)
    return Settled(
        failed_message_ids=[_message_id(records[index]) for index in sorted(retry)],
        written=written,
        already_stored=len(result.already_stored),
        dead_lettered=sum(item.events for _, item in rejected if item.message_id in stored),
        failed=unstored + unsent + len(batch.deferred),
        events=len(batch.events) + len(batch.rejected) + len(batch.poison),
        retried=retried,
        rejected=[item for _, item in rejected],
    )


def _poison_messages(records: Sequence[Mapping[str, Any]], poison: list[Poison]) -> list[tuple[int, Rejected]]:
    """Each record's poison events as one DLQ message (a packed one for several), named `<message id>#<places>`.
    Only if that cannot be one message (over the format's event count or SQS's size) are they sent one by one."""
    by_owner: dict[int, list[Poison]] = {}
    for item in sorted(poison, key=lambda p: (p.owner, p.number)):
        by_owner.setdefault(item.owner, []).append(item)
    messages = []
    for owner, items in by_owner.items():
        record = records[owner]
        grouped = _packed_rejected(record, items) if len(items) > 1 else None
        if grouped is not None:
            messages.append((owner, grouped))
        else:
            messages += [(owner, _part_rejected(record, item.number, item.text, item.reason)) for item in items]
    return messages


def _packed_rejected(record: Mapping[str, Any], items: list[Poison]) -> Rejected | None:
    if len(items) > MAX_EVENTS_PER_MESSAGE:
        return None
    lines = [EncodedMessage(item.text, {}, compressed=False, truncated=False, size=len(item.text)) for item in items]
    message = pack_events(lines)
    if message.size > MAX_BODY_BYTES:
        return None
    reason = "; ".join(f"event {item.number}: {item.reason}" for item in items)[:MAX_REASON_CHARS]
    places = ",".join(str(item.number) for item in items)
    grouped = {
        "messageId": f"{_message_id(record)}#{places}",
        "body": message.body,
        "messageAttributes": message.attributes,
    }
    return Rejected(grouped, reason, events=len(items))


def _part_rejected(record: Mapping[str, Any], number: int, text: str, reason: str) -> Rejected:
    """One event of a packed record as a record of its own (its one-event body), to be dead-lettered alone; its
    message id names the source message and the event's place in it."""
    body, attributes = one_event_message(text)
    return Rejected(
        {"messageId": f"{_message_id(record)}#{number}", "body": body, "messageAttributes": attributes}, reason
    )


def _message_id(record: Mapping[str, Any]) -> str:
    return str(record.get("messageId", "?"))
