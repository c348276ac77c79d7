"""The consumer handler end to end against a real MLflow server: real LiteLLM events in, traces and metrics out."""

from __future__ import annotations

import json
import urllib.request

import pytest
from mlflow import MlflowClient
from mlflow.entities import SpanType
from packaging.version import Version

from litellm_mlflow.sink.metrics import MODEL_KEY_TAG, model_key
from litellm_mlflow.sink.trace_builder import derived_ids
from tests.support.litellm_events import (
    WEATHER_TOOL,
    FakeLambdaContext,
    failed_ids,
    make_calls,
    sqs_event,
    sqs_record,
)

MODEL = "gpt-4o-mini"
CALL_METRICS = ("latency_ms", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd", "error", "cache_hit")


@pytest.fixture(autouse=True)
def per_call_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check the per-call metric runs, opt-in since the usage rollup replaced them."""
    monkeypatch.setenv("LITELLM_MLFLOW_CALL_METRICS", "true")


def _experiment_id(client: MlflowClient, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None, f"experiment {name} was not created"
    return experiment.experiment_id


def _traces(client: MlflowClient, experiment_id: str, events: list[dict]) -> dict[str, object]:
    """The experiment's traces by event id, checking there are no others. Trace ids are derived from the event id; a
    3.0/3.1 server makes its own, and the event id is found in the client request id or the `event_id` tag."""
    traces = {}
    for trace in _all_traces(client, experiment_id):
        derived = trace.info.trace_id
        event_id = trace.info.client_request_id or trace.info.tags.get("event_id")
        traces[event_id if event_id and not derived.startswith("tr-") else derived] = trace
    by_event = {}
    for payload in events:
        identity = payload.get("litellm_call_id") or payload["id"]  # LiteLLM's call id, not the provider's id
        for key in (f"tr-{derived_ids(experiment_id, identity)[0]:032x}", identity):
            if key in traces:
                by_event[payload["id"]] = traces.pop(key)
    assert not traces, f"unexpected traces: {list(traces)[:5]}"
    return by_event


def _server_version(server) -> Version:
    with urllib.request.urlopen(f"{server.url}/version", timeout=10) as response:
        return Version(response.read().decode().strip())


def _all_traces(client: MlflowClient, experiment_id: str) -> list:
    found, token = [], None
    while True:
        page = client.search_traces(locations=[experiment_id], max_results=500, page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return found


def _model_run(client: MlflowClient, experiment_id: str, model: str = MODEL):
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{MODEL_KEY_TAG}` = '{model_key(model)}'")
    assert len(runs) == 1, f"expected one run for {model}, found {len(runs)}"
    return runs[0]


def _point_counts(client: MlflowClient, run_id: str) -> dict[str, int]:
    keys = (*CALL_METRICS, "ttft_ms", "requests", "error_rate", "cache_hit_rate")
    return {key: len(client.get_metric_history(run_id, key)) for key in keys}


@pytest.fixture
def mlflow_server(versioned_mlflow_server):
    """Every test here runs against each MLflow server version SageMaker runs (tests/conftest.py)."""
    return versioned_mlflow_server


@pytest.fixture
def client(mlflow_server) -> MlflowClient:
    return MlflowClient(mlflow_server.url)


def _copies(payload: dict, prefix: str, count: int) -> list[dict]:
    """`count` distinct calls shaped like a real LiteLLM payload (new ids, end times a millisecond apart)."""
    return [
        dict(payload, id=f"{prefix}-{i}", litellm_call_id=f"{prefix}-{i}", endTime=payload["endTime"] + i / 1000)
        for i in range(count)
    ]


def test_litellm_calls_land_as_traces_and_model_metrics(consumer, client, experiment_name, litellm_capture):
    calls = make_calls(litellm_capture)
    records = [sqs_record(payload) for payload in calls.values()]

    response = consumer(sqs_event(records))

    assert response == {"batchItemFailures": []}
    experiment_id = _experiment_id(client, experiment_name)
    traces = _traces(client, experiment_id, list(calls.values()))
    assert set(traces) == {payload["id"] for payload in calls.values()}

    for kind, payload in calls.items():
        trace = traces[payload["id"]]
        info, span = trace.info, trace.data.spans[0]
        assert len(trace.data.spans) == 1
        assert info.request_time == round(payload["startTime"] * 1_000_000) // 1000
        assert abs(info.execution_duration - (payload["endTime"] - payload["startTime"]) * 1000) <= 1
        assert span.start_time_ns // 1000 == round(payload["startTime"] * 1_000_000)
        assert span.span_type == SpanType.CHAT_MODEL
        assert span.inputs["messages"] == payload["messages"]
        assert span.attributes["mlflow.llm.model"] == MODEL
        assert span.attributes["mlflow.llm.provider"] == "openai"
        assert span.attributes["mlflow.message.format"] == "openai"
        assert info.tags["mlflow.traceName"] == MODEL
        assert span.attributes["litellm.call_id"] == payload["litellm_call_id"]
        if kind == "failure":
            assert info.state.value == "ERROR"
            assert span.status.status_code.value == "ERROR"
            assert "mock rate limit" in span.status.description
            (exception,) = [e for e in span.events if e.name == "exception"]
            assert exception.attributes["exception.type"] == "RateLimitError"
            assert exception.attributes["exception.code"] == "429"
            assert "mock rate limit" in exception.attributes["exception.message"]
            assert span.outputs is None
            assert "mlflow.chat.tokenUsage" not in span.attributes and "mlflow.llm.cost" not in span.attributes
            continue
        assert info.state.value == "OK"
        usage = {
            "input_tokens": payload["prompt_tokens"],
            "output_tokens": payload["completion_tokens"],
            "total_tokens": payload["total_tokens"],
        }
        assert span.attributes["mlflow.chat.tokenUsage"] == usage
        assert info.token_usage == usage
        assert span.attributes["mlflow.llm.cost"]["total_cost"] == pytest.approx(payload["response_cost"])
        assert span.outputs["choices"][0]["message"]["role"] == "assistant"
        assert span.outputs == json.loads(json.dumps(payload["response"], default=str))

    success = traces[calls["success"]["id"]]
    answer = success.data.spans[0].outputs["choices"][0]["message"]["content"]
    assert answer == "MLflow is an open source MLOps platform."
    assert success.data.spans[0].attributes["litellm.request_tags"] == ["team:search", "canary"]
    assert success.info.trace_metadata["mlflow.trace.user"] == "alice"

    stream = calls["stream"]
    stream_span = traces[stream["id"]].data.spans[0]
    expected_ttft = (stream["completionStartTime"] - stream["startTime"]) * 1000
    assert stream_span.attributes["litellm.ttft_ms"] == pytest.approx(expected_ttft, abs=0.05)
    assert any(event.name == "first_token" for event in stream_span.events)

    tool_span = traces[calls["tool"]["id"]].data.spans[0]
    assert tool_span.inputs["tools"] == [WEATHER_TOOL]
    assert tool_span.attributes["mlflow.chat.tools"] == [WEATHER_TOOL]
    tool_call = tool_span.outputs["choices"][0]["message"]["tool_calls"][0]
    assert tool_call["function"] == {"name": "get_weather", "arguments": '{"city": "Tokyo"}'}

    searches = {  # the same answers on every server version (team/key searches: tests/sink/test_trace_readback.py)
        f"trace.name = '{MODEL}'": 4,
        "metadata.`mlflow.trace.user` = 'alice'": 1,
        "trace.status = 'ERROR'": 1,
    }
    for filter_string, expected in searches.items():
        found = client.search_traces(locations=[experiment_id], filter_string=filter_string, include_spans=False)
        assert len(found) == expected, filter_string

    run = _model_run(client, experiment_id)
    assert run.info.run_name == MODEL
    assert run.data.params["model"] == MODEL and run.data.params["provider"] == "openai"
    latency = client.get_metric_history(run.info.run_id, "latency_ms")
    assert len(latency) == 4
    assert sorted(point.timestamp for point in latency) == sorted(round(p["endTime"] * 1000) for p in calls.values())
    errors = client.get_metric_history(run.info.run_id, "error")
    assert sorted(point.value for point in errors) == [0.0, 0.0, 0.0, 1.0]
    (ttft,) = client.get_metric_history(run.info.run_id, "ttft_ms")
    assert ttft.value == pytest.approx(expected_ttft)
    cost = client.get_metric_history(run.info.run_id, "cost_usd")
    assert sum(point.value for point in cost) == pytest.approx(sum(p["response_cost"] for p in calls.values()))
    assert [point.value for point in client.get_metric_history(run.info.run_id, "requests")] == [4.0]
    assert [point.value for point in client.get_metric_history(run.info.run_id, "error_rate")] == [0.25]


def test_redelivered_batch_leaves_traces_and_metric_points_unchanged(
    consumer, client, experiment_name, litellm_capture
):
    calls = make_calls(litellm_capture)
    records = [sqs_record(payload) for payload in calls.values()]
    assert consumer(sqs_event(records)) == {"batchItemFailures": []}
    experiment_id = _experiment_id(client, experiment_name)
    run_id = _model_run(client, experiment_id).info.run_id
    traces_before = len(client.search_traces(locations=[experiment_id], max_results=500))
    points_before = _point_counts(client, run_id)

    # SQS redelivers the same messages (new receive count), as one batch and again split across two batches.
    again = [sqs_record(payload, receive_count=2) for payload in calls.values()]
    assert consumer(sqs_event(again)) == {"batchItemFailures": []}
    assert len(client.search_traces(locations=[experiment_id], max_results=500)) == traces_before == 4
    assert _point_counts(client, run_id) == points_before
    assert consumer(sqs_event(again[:2])) == {"batchItemFailures": []}
    assert consumer(sqs_event(again[2:])) == {"batchItemFailures": []}

    assert len(client.search_traces(locations=[experiment_id], max_results=500)) == 4
    after = _point_counts(client, run_id)
    assert {key: after[key] for key in (*CALL_METRICS, "ttft_ms")} == {
        key: points_before[key] for key in (*CALL_METRICS, "ttft_ms")
    }
    assert len(client.search_runs([experiment_id])) == 1


def test_poison_records_fail_alone(consumer, client, experiment_name, litellm_capture, mlflow_server):
    calls = make_calls(litellm_capture)
    good = [sqs_record(payload) for payload in calls.values()]
    not_json = sqs_record(body="this is not an event")
    missing_fields = sqs_record(body=json.dumps({"schema": "litellm-mlflow/1", "event": {"id": "x"}}))
    # An integer beyond int64 inside the messages (OTLP cannot carry it): stored as a float, the trace says so.
    huge = dict(calls["success"], id="huge-1", litellm_call_id="huge-1")
    huge["messages"] = [{"role": "user", "content": "hi", "n": 10**30}]
    bad = [not_json, missing_fields]

    response = consumer(sqs_event([good[0], *bad, *good[1:], sqs_record(huge)]))

    assert failed_ids(response) == {record["messageId"] for record in bad}
    experiment_id = _experiment_id(client, experiment_name)
    traces = _traces(client, experiment_id, [*calls.values(), huge])
    assert set(traces) == {p["id"] for p in calls.values()} | {"huge-1"}
    assert traces["huge-1"].info.tags["litellm_mlflow.repaired"] == "messages:integer_too_large"
    run_id = _model_run(client, experiment_id).info.run_id
    assert len(client.get_metric_history(run_id, "latency_ms")) == 5


def test_mlflow_down_fails_every_record_and_redelivery_lands_them(
    consumer, client, experiment_name, litellm_capture, mlflow_server
):
    calls = make_calls(litellm_capture)
    first, rest = list(calls.values())[:1], list(calls.values())[1:]
    assert consumer(sqs_event([sqs_record(p) for p in first])) == {"batchItemFailures": []}

    records = [sqs_record(payload) for payload in rest]
    mlflow_server.stop()
    try:
        response = consumer(sqs_event(records))
    finally:
        mlflow_server.start()
    assert failed_ids(response) == {record["messageId"] for record in records}

    redelivered = [sqs_record(payload, receive_count=2) for payload in rest]
    assert consumer(sqs_event(redelivered)) == {"batchItemFailures": []}
    experiment_id = _experiment_id(client, experiment_name)
    assert set(_traces(client, experiment_id, list(calls.values()))) == {p["id"] for p in calls.values()}
    run_id = _model_run(client, experiment_id).info.run_id
    assert len(client.get_metric_history(run_id, "latency_ms")) == 4


def test_out_of_time_fails_the_rest_cleanly(consumer, client, experiment_name, litellm_capture):
    calls = make_calls(litellm_capture)
    records = [sqs_record(payload) for payload in calls.values()]

    response = consumer(sqs_event(records), FakeLambdaContext(timeout_s=0.5))

    assert failed_ids(response) == {record["messageId"] for record in records}
    experiment = client.get_experiment_by_name(experiment_name)
    assert experiment is None or len(client.search_traces(locations=[experiment.experiment_id])) == 0


def test_sdk_fallback_path_writes_the_same_traces_once(
    consumer, client, experiment_name, litellm_capture, monkeypatch, mlflow_server
):
    """The path for servers before 3.13 (forced here): one confirmed StartTrace + spans per call, deduplicated."""
    monkeypatch.setenv("LITELLM_MLFLOW_TRACE_WRITER", "sdk")
    calls = make_calls(litellm_capture)
    records = [sqs_record(payload) for payload in calls.values()]

    assert consumer(sqs_event(records)) == {"batchItemFailures": []}
    assert consumer(sqs_event([sqs_record(p, receive_count=2) for p in calls.values()])) == {"batchItemFailures": []}

    experiment_id = _experiment_id(client, experiment_name)
    traces = _traces(client, experiment_id, list(calls.values()))
    assert len(client.search_traces(locations=[experiment_id], max_results=500)) == 4
    failure = traces[calls["failure"]["id"]]
    assert failure.info.state.value == "ERROR"
    success = traces[calls["success"]["id"]]
    if _server_version(mlflow_server) >= Version("3.2"):  # 3.0/3.1 servers make their own trace ids (v2 API)
        assert failure.info.client_request_id == calls["failure"]["litellm_call_id"]
        identity = calls["success"]["litellm_call_id"]
        assert success.info.trace_id == f"tr-{derived_ids(experiment_id, identity)[0]:032x}"
    assert success.info.tags["mlflow.traceName"] == MODEL
    assert success.info.trace_metadata["mlflow.trace.user"] == "alice"
    assert success.data.spans[0].inputs["messages"] == calls["success"]["messages"]
    assert success.info.token_usage["total_tokens"] == calls["success"]["total_tokens"]
    run_id = _model_run(client, experiment_id).info.run_id
    assert len(client.get_metric_history(run_id, "latency_ms")) == 4


def test_mixed_redelivered_and_new_batch_stores_everything_once(consumer, client, experiment_name, litellm_capture):
    """Old servers reject a log_batch repeating >100 stored points; redelivered and new calls together must land."""
    calls = make_calls(litellm_capture)
    old = _copies(calls["success"], "old", 10)
    new = _copies(calls["failure"], "new", 200)
    assert consumer(sqs_event([sqs_record(p) for p in old])) == {"batchItemFailures": []}

    mixed = [sqs_record(p, receive_count=2) for p in old] + [sqs_record(p) for p in new]
    assert consumer(sqs_event(mixed)) == {"batchItemFailures": []}
    assert consumer(sqs_event([sqs_record(p, receive_count=3) for p in old + new])) == {"batchItemFailures": []}

    experiment_id = _experiment_id(client, experiment_name)
    assert set(_traces(client, experiment_id, old + new)) == {p["id"] for p in old + new}
    run_id = _model_run(client, experiment_id).info.run_id
    assert len(client.get_metric_history(run_id, "latency_ms")) == 210
    assert sum(point.value for point in client.get_metric_history(run_id, "error")) == 200
    assert sum(point.value for point in client.get_metric_history(run_id, "requests")) == 210  # each call once


def test_traces_whose_span_batch_failed_are_finished_on_redelivery_with_tokens_counted_once(
    consumer, client, experiment_name, litellm_capture, monkeypatch, mlflow_server
):
    """On 3.10.x the StartTraces go first: when the span batch then fails, the half-written traces must not count as
    stored, and the redelivery must add their token usage and cost once (the span logging adds them up)."""
    from litellm_mlflow.sink.otlp_writer import OtlpTraceWriter
    from litellm_mlflow.sink.transport import ServerUnavailable

    calls = make_calls(litellm_capture)
    records = [sqs_record(payload) for payload in calls.values()]
    post = OtlpTraceWriter._post

    def fail(self, chunk, deadline):
        raise ServerUnavailable("span batch lost")

    monkeypatch.setattr(OtlpTraceWriter, "_post", fail)
    first = consumer(sqs_event(records))
    monkeypatch.setattr(OtlpTraceWriter, "_post", post)
    again = [sqs_record(payload, receive_count=2) for payload in calls.values()]
    assert consumer(sqs_event(again)) == {"batchItemFailures": []}
    assert consumer(sqs_event(again)) == {"batchItemFailures": []}

    experiment_id = _experiment_id(client, experiment_name)
    traces = _traces(client, experiment_id, list(calls.values()))
    assert set(traces) == {payload["id"] for payload in calls.values()}
    success = traces[calls["success"]["id"]]
    assert len(success.data.spans) == 1
    assert success.info.token_usage["total_tokens"] == calls["success"]["total_tokens"]
    cost = json.loads(success.info.trace_metadata.get("mlflow.trace.cost") or "{}")
    assert cost.get("total_cost", calls["success"]["response_cost"]) == pytest.approx(calls["success"]["response_cost"])
    assert success.info.tags["mlflow.traceName"] == MODEL
    run_id = _model_run(client, experiment_id).info.run_id
    assert len(client.get_metric_history(run_id, "latency_ms")) == 4
    if _server_version(mlflow_server) >= Version("3.6"):  # spans in OTLP batches
        assert failed_ids(first) == {record["messageId"] for record in records}
