"""Hostile and unlucky records through the real consumer handler, a real MLflow server and a local SQS DLQ.

The promises: a bad record fails alone with a reason naming the field and the value's kind; a record that can never
be stored goes to the DLQ at once (reason as a message attribute) and is acknowledged; everything storable is stored,
with the trace naming what was repaired; every call is its own trace (LiteLLM's call id, not the provider's id).
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid

import pytest
from mlflow.tracking import MlflowClient

from litellm_mlflow.events import encode_event
from litellm_mlflow.sink.dead_letter import DLQ_URL_ENV, REASON_ATTRIBUTE, SOURCE_MESSAGE_ATTRIBUTE
from litellm_mlflow.sink.metrics import MODEL_KEY_TAG, model_key
from litellm_mlflow.sink.trace_builder import REPAIRED_TAG
from tests.support.litellm_events import failed_ids, sqs_event, sqs_record

START = 1_790_000_000.0


def payload(call_id: str, **overrides: object) -> dict:
    base = {
        "id": "chatcmpl-constant",  # a gateway that answers the same response id every time
        "litellm_call_id": call_id,
        "model": "hostile-model",
        "startTime": START,
        "endTime": START + 0.5,
        "status": "success",
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
        "response_cost": 0.001,
        "messages": [{"role": "user", "content": "hi"}],
        "response": {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}]},
    }
    base.update(overrides)
    return base


def gzip_record(raw: bytes) -> dict:
    body = base64.b64encode(raw).decode("ascii")
    record = sqs_record(body=body)
    record["messageAttributes"] = {"content-encoding": {"stringValue": "gzip+base64", "dataType": "String"}}
    return record


@pytest.fixture(autouse=True)
def per_call_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """The repaired model's per-call run is checked below: opt-in since the usage rollup replaced those runs."""
    monkeypatch.setenv("LITELLM_MLFLOW_CALL_METRICS", "true")


@pytest.fixture
def dlq(sqs_queue, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(DLQ_URL_ENV, sqs_queue.dlq_url)
    return sqs_queue


def _traces_by_call(client: MlflowClient, experiment_name: str) -> dict[str, object]:
    experiment = client.get_experiment_by_name(experiment_name)
    traces = client.search_traces(locations=[experiment.experiment_id], max_results=500, include_spans=True)
    return {trace.data.spans[0].attributes["litellm.call_id"]: trace for trace in traces}


def test_hostile_records_fail_alone_and_the_unstorable_reach_the_dlq_with_their_reason(
    dlq, consumer, mlflow_server, experiment_name
) -> None:
    deep = '{"schema":"litellm-mlflow/1","event":' + "[" * 20_000 + "]" * 20_000 + "}"
    long_int = json.dumps({"schema": "litellm-mlflow/1", "event": payload("x")})[:-2] + ',"n":' + "9" * 5000 + "}}"
    corrupt = bytearray(gzip.compress(json.dumps({"schema": "litellm-mlflow/1", "event": payload("y")}).encode()))
    corrupt[12:20] = b"\xff" * 8  # valid header, broken deflate block
    bomb = gzip.compress(b'{"schema":"litellm-mlflow/1","event":{"messages":"' + b"A" * 40_000_000 + b'"}}')
    unstorable = {
        "deep": sqs_record(body=deep),
        "long_int": sqs_record(body=long_int),
        "corrupt_gzip": gzip_record(bytes(corrupt)),
        "bomb": gzip_record(bomb),
        "no_times": sqs_record(body=json.dumps({"schema": "litellm-mlflow/1", "event": {"model": "m"}})),
    }
    storable = {
        "tags_number": payload("tags-number", request_tags=7),
        "tags_bool": payload("tags-bool", request_tags=True),
        "surrogate_model": payload("surrogate", model="broken-\ud83d-model"),
        "pre_1970_end": payload("pre-1970", endTime=-5.0),
        "huge_tokens": payload("huge-tokens", prompt_tokens=1e30, total_tokens=10**30),
        "ms_times": payload("ms-times", startTime=START * 1000, endTime=(START + 0.5) * 1000),
        "empty_provider_id": payload("empty-id", id=""),
        "same_provider_id": payload("same-id"),
    }
    records = [*unstorable.values(), *(sqs_record(p) for p in storable.values())]

    response = consumer(sqs_event(records))

    assert failed_ids(response) == set()  # nothing is retried as if MLflow were down
    dead = {m["MessageAttributes"][SOURCE_MESSAGE_ATTRIBUTE]["StringValue"]: m for m in dlq.receive_all(dlq.dlq_url)}
    assert set(dead) == {record["messageId"] for record in unstorable.values()}
    reasons = {name: dead[record["messageId"]]["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]
               for name, record in unstorable.items()}  # fmt: skip
    assert "nested deeper than" in reasons["deep"]
    assert "5000 digits" in reasons["long_int"] and "LITELLM_MLFLOW_MAX_INT_DIGITS" in reasons["long_int"]
    assert "does not decode" in reasons["corrupt_gzip"]
    assert "inflates beyond" in reasons["bomb"]
    assert "startTime" in reasons["no_times"]
    assert all("AAAA" not in reason and "9999" not in reason for reason in reasons.values())  # never the content
    assert dead[unstorable["deep"]["messageId"]]["Body"] == unstorable["deep"]["body"]  # the original, for redrive

    client = MlflowClient(mlflow_server.url)
    traces = _traces_by_call(client, experiment_name)
    assert set(traces) == {p["litellm_call_id"] for p in storable.values()}  # same provider id: still two traces
    repaired = {call: trace.info.tags.get(REPAIRED_TAG, "") for call, trace in traces.items()}
    assert repaired["tags-number"] == repaired["tags-bool"] == "request_tags"
    assert "model:unicode" in repaired["surrogate"]
    assert "endTime:from_startTime" in repaired["pre-1970"]
    assert "prompt_tokens" in repaired["huge-tokens"] and "total_tokens" in repaired["huge-tokens"]
    assert "startTime:ms" in repaired["ms-times"]
    assert traces["ms-times"].info.request_time == int(START * 1000)
    # The repaired model name still gets its run and its metric points.
    experiment = client.get_experiment_by_name(experiment_name)
    key = model_key("broken-\ufffd-model")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{MODEL_KEY_TAG}` = '{key}'")
    assert len(runs) == 1
    assert len(client.get_metric_history(runs[0].info.run_id, "latency_ms")) == 1


def test_without_a_dlq_the_unstorable_are_handed_back_to_sqs(consumer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DLQ_URL_ENV, raising=False)
    bad = sqs_record(body="not json at all")
    good = sqs_record(payload(f"ok-{uuid.uuid4().hex[:8]}"))
    assert failed_ids(consumer(sqs_event([bad, good]))) == {bad["messageId"]}


def test_a_dlq_that_refuses_leaves_the_record_to_sqs(consumer, monkeypatch: pytest.MonkeyPatch, sqs_server) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", sqs_server.url)
    monkeypatch.setenv(DLQ_URL_ENV, f"{sqs_server.url}/123456789012/no-such-queue-{uuid.uuid4().hex[:6]}")
    bad = sqs_record(body="{")
    assert failed_ids(consumer(sqs_event([bad, sqs_record(encode_event_payload())]))) == {bad["messageId"]}


def encode_event_payload() -> dict:
    event = payload(f"ok-{uuid.uuid4().hex[:8]}")
    assert encode_event(event).size > 0
    return event
