"""Several events per SQS message, against moto: every event arrives once in far fewer messages and requests; large
events travel alone; a packed message the queue refuses is split so only the event that cannot travel is lost."""

from __future__ import annotations

import logging
import os
import uuid

import boto3

from litellm_mlflow import events
from litellm_mlflow.publish.sender import SqsBatchSender
from tests.support.sqs_events import all_events

START = 1_790_000_000.0


def payload(content: str = "hi") -> dict:
    call_id = str(uuid.uuid4())
    return {"litellm_call_id": call_id, "id": call_id, "model": "m", "startTime": START, "endTime": START + 1,
            "messages": [{"role": "user", "content": content}]}  # fmt: skip


def sender(queue_url: str, endpoint: str, **kwargs) -> SqsBatchSender:
    return SqsBatchSender(
        queue_url=queue_url,
        encode=events.encode_event,
        client_factory=lambda url: boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1"),
        **kwargs,
    )


def test_events_are_packed_and_each_arrives_once(sqs_queue) -> None:
    published = sender(sqs_queue.url, sqs_queue.endpoint, events_per_message=10, linger_s=5.0)
    payloads = [payload(f"question {i}") for i in range(95)] + [payload("x" * 100_000)]  # the last one travels alone
    for item in payloads:
        published.submit(item)
    assert published.flush(30), published.stats()

    messages = sqs_queue.receive_all()
    arrived = all_events(messages)
    assert sorted(event.event_id for event in arrived) == sorted(p["litellm_call_id"] for p in payloads)
    assert len(messages) <= 11  # 95 small events in messages of 10, the large one alone
    packed = [m for m in messages if m["MessageAttributes"]["schema"]["StringValue"] == events.PACKED_SCHEMA]
    assert len(packed) >= 9 and all(len(all_events([m])) > 1 for m in packed)
    stats = published.stats()
    assert (stats["sent"], stats["pending"], stats["failed_permanently"]) == (96, 0, 0)
    assert stats["requests"] <= 3


def test_a_refused_packed_message_is_split_and_only_the_bad_event_is_lost(sqs_queue, caplog) -> None:
    small = sqs_queue.client.create_queue(
        QueueName=f"small-{uuid.uuid4().hex[:8]}", Attributes={"MaximumMessageSize": "8192"}
    )["QueueUrl"]
    published = sender(small, sqs_queue.endpoint, events_per_message=10, linger_s=5.0)
    good = [payload(f"answer {i}") for i in range(6)]
    too_big = payload(os.urandom(12_000).hex())  # fits a packed message's text, not this queue
    caplog.set_level(logging.WARNING, logger="litellm_mlflow.publish.sender")
    for item in [*good[:3], too_big, *good[3:]]:
        published.submit(item)
    assert published.flush(60)

    assert "sending them one by one" in caplog.text
    stats = published.stats()
    assert (stats["sent"], stats["failed_permanently"], stats["pending"]) == (6, 1, 0)
    arrived = all_events(sqs_queue.receive_all(queue_url=small))
    assert sorted(event.event_id for event in arrived) == sorted(p["litellm_call_id"] for p in good)


def test_events_per_message_above_the_format_limit_is_capped_not_lost(sqs_queue) -> None:
    published = sender(sqs_queue.url, sqs_queue.endpoint, events_per_message=150, linger_s=5.0)
    payloads = [payload(f"question {i}") for i in range(300)]
    for item in payloads:
        published.submit(item)
    assert published.flush(30), published.stats()

    arrived = all_events(sqs_queue.receive_all())
    assert sorted(event.event_id for event in arrived) == sorted(p["litellm_call_id"] for p in payloads)
    assert published.stats()["pending"] == 0


def test_events_are_sent_one_per_message_when_packing_fails(sqs_queue, monkeypatch, caplog) -> None:
    def broken_pack(messages):
        raise RuntimeError("packing bug")

    monkeypatch.setattr("litellm_mlflow.publish.sender.pack_events", broken_pack)
    published = sender(sqs_queue.url, sqs_queue.endpoint, events_per_message=10, linger_s=5.0)
    payloads = [payload(f"question {i}") for i in range(25)]
    caplog.set_level(logging.ERROR, logger="litellm_mlflow.publish.batching")
    for item in payloads:
        published.submit(item)
    assert published.flush(30), published.stats()

    messages = sqs_queue.receive_all()
    assert sorted(event.event_id for event in all_events(messages)) == sorted(p["litellm_call_id"] for p in payloads)
    assert len(messages) == 25 and "could not pack" in caplog.text
    assert (published.stats()["sent"], published.stats()["pending"]) == (25, 0)
