"""record_batch.settle without a server: what a record's answer is when the DLQ takes some of a batch and not all."""

from __future__ import annotations

from litellm_mlflow import events
from litellm_mlflow.sink.dead_letter import Rejected
from litellm_mlflow.sink.record_batch import decode_records, settle
from litellm_mlflow.sink.writer import WriteResult

START = 1_790_000_000.0


def line(call_id: str) -> events.EncodedMessage:
    return events.encode_event({"litellm_call_id": call_id, "model": "m", "startTime": START, "endTime": START + 1})


def garbage(text: str) -> events.EncodedMessage:
    """A line that does not decode (a hostile or corrupted publisher)."""
    return events.EncodedMessage(text, {}, compressed=False, truncated=False, size=len(text))


def packed(message_id: str, *messages: events.EncodedMessage) -> dict:
    message = events.pack_events(list(messages))
    attributes = {
        n: {"stringValue": a["StringValue"], "dataType": a["DataType"]} for n, a in message.attributes.items()
    }
    return {"messageId": message_id, "body": message.body, "messageAttributes": attributes}


def test_a_refused_dlq_message_sends_its_record_back_and_no_copy_of_its_events_stays_in_the_dlq() -> None:
    first = packed("a", line("a0"), garbage("not json"), line("a2"))
    second = packed("b", garbage("{"), line("b1"))
    batch = decode_records([first, second], events.DEFAULT_LIMITS, budget=1 << 30)
    assert [event.event_id for event in batch.events] == ["a0", "a2", "b1"]
    sent: list[Rejected] = []

    def dlq_refusing_a(items: list[Rejected]) -> set[str]:
        sent.extend(items)
        return {item.message_id for item in items if not item.message_id.startswith("a#")}

    # a2 can never be stored either (the sink says so: permanent), a0 and b1 are stored.
    settled = settle(batch, WriteResult(total=3, failed={1: "no trace"}, permanent={1}), dlq_refusing_a)

    assert [(item.message_id, item.events) for item in sent] == [("a#1,2", 2), ("b#0", 1)]
    assert settled.failed_message_ids == ["a"]  # back to SQS whole; nothing of it is in the DLQ
    assert settled.dead_lettered == 1 and settled.written == 1  # b's poison event, b's good one
    assert settled.failed == 2  # a's two poison events, not sent
    assert settled.events == 5


def test_poison_events_too_many_for_one_packed_message_go_one_by_one() -> None:
    lines = [garbage(f"not json {i}") for i in range(events.MAX_EVENTS_PER_MESSAGE + 1)]
    limits = events.DecodeLimits(max_events_per_message=len(lines))
    header = f'{{"schema":"{events.PACKED_SCHEMA}","events":{len(lines)}}}'
    record = {"messageId": "big", "body": "\n".join([header, *(item.body for item in lines)])}
    batch = decode_records([record], limits, budget=1 << 30)
    assert len(batch.poison) == len(lines)

    settled = settle(batch, WriteResult(total=0), lambda items: {item.message_id for item in items})

    assert len(settled.rejected) == len(lines) and settled.dead_lettered == len(lines)
    assert settled.failed_message_ids == []
