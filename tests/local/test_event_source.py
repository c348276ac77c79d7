"""The emulated SQS event source mapping behaves like Lambda's: partial failures stay, crashes fail all, redrive."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from litellm_mlflow.local.event_source import (
    InvocationOutcome,
    LocalLambdaContext,
    SqsEventSourceEmulator,
    to_lambda_record,
)


@pytest.fixture
def short_queue(sqs_queue):
    """The fixture queue with a 1 s visibility timeout so retries come back quickly."""
    sqs_queue.client.set_queue_attributes(QueueUrl=sqs_queue.url, Attributes={"VisibilityTimeout": "1"})
    return sqs_queue


def _send(queue, bodies: list[str]) -> None:
    for body in bodies:
        queue.client.send_message(
            QueueUrl=queue.url,
            MessageBody=body,
            MessageAttributes={"content-encoding": {"DataType": "String", "StringValue": "identity"}},
        )


def _depth(queue, url: str) -> int:
    attrs = queue.client.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def _poll_until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met before the deadline")


def test_record_shape_matches_lambda():
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "rh",
        "Body": "{}",
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1700000000000"},
        "MessageAttributes": {"content-encoding": {"DataType": "String", "StringValue": "gzip+base64"}},
        "MD5OfBody": "x",
    }
    record = to_lambda_record(message, "arn:aws:sqs:us-east-1:123:q", "us-east-1")
    assert record["messageId"] == "m1"
    assert record["messageAttributes"]["content-encoding"]["stringValue"] == "gzip+base64"
    assert record["attributes"]["ApproximateReceiveCount"] == "2"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":q")


def test_context_counts_down():
    context = LocalLambdaContext(timeout_s=5)
    first = context.get_remaining_time_in_millis()
    assert 0 < first <= 5000
    _poll_until(lambda: context.get_remaining_time_in_millis() < first)


def test_only_reported_failures_stay_and_poison_reaches_the_dlq(short_queue):
    seen: list[str] = []

    def handler(event, context):
        failures = []
        for record in event["Records"]:
            seen.append(record["body"])
            if json.loads(record["body"])["poison"]:
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    good = [json.dumps({"poison": False, "n": i}) for i in range(12)]
    poison = json.dumps({"poison": True, "n": uuid.uuid4().hex})
    _send(short_queue, [*good, poison])
    emulator = SqsEventSourceEmulator(short_queue.client, short_queue.url, handler, batch_size=50, wait_time_s=0)

    emulator.poll_once()
    assert sorted(seen) == sorted([*good, poison])
    # The good ones are deleted; the poison one comes back until the redrive policy (3 receives) moves it to the DLQ.
    _poll_until(lambda: emulator.poll_once() is not None and _depth(short_queue, short_queue.dlq_url) == 1)
    assert _depth(short_queue, short_queue.url) == 0
    assert seen.count(poison) == 3
    assert all(seen.count(body) == 1 for body in good)


def test_a_crashing_handler_fails_the_whole_batch(short_queue):
    calls = {"n": 0}

    def handler(event, context):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return {"batchItemFailures": []}

    _send(short_queue, [json.dumps({"i": i}) for i in range(5)])
    emulator = SqsEventSourceEmulator(short_queue.client, short_queue.url, handler, batch_size=10, wait_time_s=0)
    first = emulator.poll_once()
    assert first.crashed and first.failed == 5 and first.succeeded == 0
    assert _depth(short_queue, short_queue.url) == 5
    _poll_until(lambda: emulator.poll_once().succeeded == 5)
    assert _depth(short_queue, short_queue.url) == 0
    assert emulator.totals.crashes == 1 and emulator.totals.succeeded == 5


def test_polling_backs_off_only_while_whole_batches_fail(short_queue):
    emulator = SqsEventSourceEmulator(short_queue.client, short_queue.url, lambda e, c: None, wait_time_s=0)
    all_failed = InvocationOutcome(received=5, succeeded=0, failed=5)
    assert [emulator.backoff_after(all_failed) for _ in range(6)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert emulator.backoff_after(InvocationOutcome(received=5, succeeded=4, failed=1)) == 0.0
    assert emulator.backoff_after(all_failed) == 2.0
    assert emulator.backoff_after(InvocationOutcome()) == 0.0
