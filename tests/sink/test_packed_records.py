"""Packed records (several events in one SQS message) through the real consumer handler, a real MLflow server and a
local SQS (moto): a poison event is dead-lettered alone while the others are stored; a record with any event that
failed for a passing reason goes back whole, and its redelivery counts each call once; `redrive` brings a packed
message back intact."""

from __future__ import annotations

import uuid

import pytest
from mlflow.tracking import MlflowClient

from litellm_mlflow import events
from litellm_mlflow import usage_metrics as names
from litellm_mlflow.cli.commands.redrive import Queues, move_by_hand
from litellm_mlflow.local.event_source import to_lambda_record
from litellm_mlflow.sink.dead_letter import DLQ_URL_ENV, REASON_ATTRIBUTE, SOURCE_MESSAGE_ATTRIBUTE
from tests.support.emf import emf_documents, emf_metrics, values_by
from tests.support.litellm_events import (
    FakeLambdaContext,
    failed_ids,
    load_consumer_handler,
    make_calls,
    sqs_event,
    sqs_record,
)

START = 1_790_000_000.0


def payload(call_id: str, **overrides: object) -> dict:
    base = {"litellm_call_id": call_id, "model": "packed-model", "startTime": START, "endTime": START + 0.5,
            "status": "success", "prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,
            "response_cost": 0.001, "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    base.update(overrides)
    return base


def raw_line(text: str) -> events.EncodedMessage:
    """A line that is not what the encoder writes (a hostile or corrupted publisher)."""
    return events.EncodedMessage(text, {}, compressed=False, truncated=False, size=len(text))


def packed_record(*items: dict | events.EncodedMessage) -> dict:
    messages = [item if isinstance(item, events.EncodedMessage) else events.encode_event(item) for item in items]
    message = events.pack_events(messages)
    record = sqs_record(body=message.body)
    record["messageAttributes"] = {
        name: {"stringValue": attr["StringValue"], "dataType": attr["DataType"]}
        for name, attr in message.attributes.items()
    }
    return record


def _stored_calls(client: MlflowClient, experiment_name: str) -> list[str]:
    experiment = client.get_experiment_by_name(experiment_name)
    traces = client.search_traces(locations=[experiment.experiment_id], max_results=500, include_spans=True)
    return sorted(trace.data.spans[0].attributes["litellm.call_id"] for trace in traces)


def test_poison_events_are_dead_lettered_together_without_the_others_which_are_stored(
    sqs_queue, consumer, mlflow_server, experiment_name, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DLQ_URL_ENV, sqs_queue.dlq_url)
    good = [payload(f"good-{i}-{uuid.uuid4().hex[:6]}") for i in range(3)]
    no_times = payload("no-times", startTime=None, endTime=None)
    record = packed_record(good[0], no_times, good[1], raw_line("not json"), good[2])
    lone = packed_record(
        payload(f"fine-{uuid.uuid4().hex[:6]}"), payload("no-times-either", startTime=None, endTime=None)
    )

    assert failed_ids(consumer(sqs_event([record, lone]))) == set()

    dead = {
        m["MessageAttributes"][SOURCE_MESSAGE_ATTRIBUTE]["StringValue"]: m
        for m in sqs_queue.receive_all(sqs_queue.dlq_url)
    }
    # One DLQ message per record: its poison events travel together, so the DLQ takes them all or none.
    assert set(dead) == {f"{record['messageId']}#1,3", f"{lone['messageId']}#1"}
    both = dead[f"{record['messageId']}#1,3"]
    reason = both["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]
    assert "event 1:" in reason and "startTime" in reason and "event 3:" in reason and "not valid JSON" in reason
    parts = events.decode_message(both["Body"], both["MessageAttributes"])
    assert [part.event for part in parts] == [None, None]
    assert '"no-times"' in parts[0].text and parts[1].text == "not json"
    assert all(p["litellm_call_id"] not in both["Body"] for p in good)
    # A single poison event is that event alone, in the one-event format.
    alone = dead[f"{lone['messageId']}#1"]
    assert alone["MessageAttributes"][events.SCHEMA_ATTRIBUTE]["StringValue"] == events.SCHEMA
    with pytest.raises(events.EventDecodeError, match="startTime"):
        events.decode_message(alone["Body"], alone["MessageAttributes"])

    stored = _stored_calls(MlflowClient(mlflow_server.url), experiment_name)
    assert [call for call in stored if not call.startswith("fine-")] == sorted(p["litellm_call_id"] for p in good)


def test_a_record_with_a_transient_failure_goes_back_whole_and_counts_each_call_once(
    consumer, litellm_capture, mlflow_server, experiment_name, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LITELLM_MLFLOW_TRACE_WRITER", "sdk")  # the path on which the sink tells stored traces
    calls = list(make_calls(litellm_capture).values())
    assert failed_ids(consumer(sqs_event([packed_record(*calls[:2])]))) == set()
    capsys.readouterr()

    everything = packed_record(*calls)
    mlflow_server.stop()
    try:
        assert failed_ids(consumer(sqs_event([everything]))) == {everything["messageId"]}
    finally:
        mlflow_server.start()
    capsys.readouterr()

    redelivered = dict(everything, attributes={**everything["attributes"], "ApproximateReceiveCount": "2"})
    assert failed_ids(consumer(sqs_event([redelivered]))) == set()
    metrics = emf_metrics(emf_documents(capsys.readouterr().out))
    calls_counted = sum(figures[names.CALLS][0] for figures in values_by(metrics, names.MODEL_GROUP).values())
    assert calls_counted == 2  # the two calls stored before are not counted again
    assert values_by(metrics, names.SERVICE)[names.CONSUMER_SERVICE][names.EVENTS_WRITTEN] == [4]
    stored = _stored_calls(MlflowClient(mlflow_server.url), experiment_name)
    assert stored == sorted(call["litellm_call_id"] for call in calls)


def test_redrive_brings_a_packed_message_back_whole(sqs_queue, consumer, mlflow_server, experiment_name) -> None:
    good = [payload(f"redriven-{i}-{uuid.uuid4().hex[:6]}") for i in range(2)]
    message = events.pack_events([events.encode_event(p) for p in good])
    sqs_queue.client.send_message(
        QueueUrl=sqs_queue.dlq_url, MessageBody=message.body, MessageAttributes=message.attributes
    )

    assert move_by_hand(sqs_queue.client, Queues(sqs_queue.url, sqs_queue.dlq_url)) == 1

    received = sqs_queue.receive_all()
    records = [to_lambda_record(m, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1") for m in received]
    assert failed_ids(consumer(sqs_event(records))) == set()
    assert _stored_calls(MlflowClient(mlflow_server.url), experiment_name) == sorted(p["litellm_call_id"] for p in good)


def test_a_packed_message_beyond_the_decode_limits_is_refused_whole(consumer, monkeypatch) -> None:
    monkeypatch.delenv(DLQ_URL_ENV, raising=False)
    monkeypatch.setenv(events.MAX_EVENTS_PER_MESSAGE_ENV, "10")
    limited = load_consumer_handler()  # the limits are read when the handler is loaded
    eleven = packed_record(*(payload(f"many-{i}") for i in range(11)))
    ten = packed_record(*(payload(f"ten-{i}-{uuid.uuid4().hex[:6]}") for i in range(10)))

    assert failed_ids(limited(sqs_event([eleven, ten]), FakeLambdaContext())) == {eleven["messageId"]}
