"""End to end on the local stack: real LiteLLM proxy (our callback in its config) -> moto SQS -> the real consumer
handler under emulated Lambda semantics -> a real MLflow server. Every request must appear exactly once as a trace
with its details; the usage summaries must match; an MLflow restart loses nothing; a poison message ends in the DLQ.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
from mlflow import MlflowClient

from litellm_mlflow.local.demo import quiet_consumer_logs
from litellm_mlflow.local.demo_traffic import plan_requests, send_all
from litellm_mlflow.local.stack import LocalStack, LocalStackOptions
from litellm_mlflow.mlflow_queries import search_traces
from litellm_mlflow.sink.dead_letter import REASON_ATTRIBUTE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

EXPERIMENT = "e2e-pipeline"


def poll(condition, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {value!r})")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    quiet_consumer_logs()
    options = LocalStackOptions(
        workdir=tmp_path_factory.mktemp("local-stack"),
        experiment=EXPERIMENT,
        visibility_timeout_s=3,
        max_receive_count=6,
        batch_size=50,
        batching_window_s=0.3,
    )
    with LocalStack(options) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack):
    return MlflowClient(stack.mlflow.url)


def all_traces(client, include_spans: bool = False) -> list:
    return search_traces(client.tracking_uri, EXPERIMENT, include_spans=include_spans)


def traces_by_call_id(client, call_ids: list[str]) -> dict[str, list]:
    """Traces by LiteLLM's call id (the `x-litellm-call-id` header the client got back, a span attribute)."""
    found: dict[str, list] = {call_id: [] for call_id in call_ids}
    for trace in all_traces(client, include_spans=True):
        call_id = trace.data.spans[0].attributes.get("litellm.call_id")
        if call_id in found:
            found[call_id].append(trace)
    return found


def wait_landed(stack, client, total: int, timeout: float = 240) -> None:
    poll(lambda: len(all_traces(client)) >= total and stack.queue_depth() == 0, timeout, f"{total} traces")


def test_every_request_lands_once_with_its_details(stack, client):
    plans = plan_requests(24, seed=11)
    report = send_all(stack.proxy_url, plans, concurrency=6)
    assert not report.unexpected, [r.error for r in report.unexpected]
    assert all(sent.call_id for sent in report.sent), "the proxy answers every request with x-litellm-call-id"
    wait_landed(stack, client, len(plans))

    found = traces_by_call_id(client, [sent.call_id for sent in report.sent])
    for sent in report.sent:
        plan = sent.planned
        traces = found[sent.call_id]
        assert len(traces) == 1, f"{plan.kind} request {sent.call_id}: {len(traces)} traces"
        trace = traces[0]
        tags, metadata = trace.info.tags, trace.info.trace_metadata
        span = trace.data.spans[0]
        assert tags["mlflow.traceName"] == plan.model and span.attributes["mlflow.llm.model"] == plan.model
        assert (tags["team_id"], tags["team_alias"], tags["key_alias"]) == (
            plan.key.team_id,
            plan.key.team_alias,
            plan.key.key_alias,
        )
        assert tags.get("end_user") == plan.end_user
        assert metadata["mlflow.trace.user"] == plan.user
        assert metadata.get("mlflow.trace.session") == plan.session_id
        assert f"kind:{plan.kind}" in span.attributes["litellm.request_tags"]  # LiteLLM adds the User-Agent
        assert not any(key.startswith("kind") for key in tags), "request tags are span details, not tag columns"
        assert span.inputs["messages"] == plan.messages
        if plan.expect_success:
            assert trace.info.state.value == "OK"
            usage = trace.info.token_usage
            assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
            assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
            assert span.attributes["mlflow.chat.tokenUsage"] == usage
            if plan.kind == "unpriced":
                assert "mlflow.llm.cost" not in span.attributes and span.attributes["litellm.cost_unknown"] is True
            else:
                assert span.attributes["mlflow.llm.cost"]["total_cost"] > 0, plan.model
        else:
            assert trace.info.state.value == "ERROR"
            assert "mlflow.llm.cost" not in span.attributes and "mlflow.chat.tokenUsage" not in span.attributes
            exception = [e for e in span.events if e.name == "exception"]
            assert exception and exception[0].attributes["exception.type"] == "RateLimitError"
        if plan.kind == "tool":
            call = span.outputs["choices"][0]["message"]["tool_calls"][0]
            assert call["function"]["name"] == "get_weather"
        if plan.kind == "stream":
            assert span.attributes["litellm.ttft_ms"] > 0
        start_ms = trace.info.request_time
        assert abs(start_ms / 1000 - time.time()) < 600, "trace is back-dated to the call, which just happened"


def test_usage_summaries_match_the_requests(stack, client):
    traces = all_traces(client)
    group = {t.info.trace_id: t.info.tags["mlflow.traceName"] for t in traces}  # the model group
    per_group = Counter(group.values())
    errors = Counter(group[t.info.trace_id] for t in traces if t.info.state.value != "OK")
    stack.rollup.run_now(close_open_hour=True)  # what the periodic task does once the hour has closed
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    summaries = client.search_runs([experiment_id], filter_string="tags.`litellm_mlflow.summary` LIKE '%'")
    runs = {run.info.run_name: run for run in summaries}
    for name, count in per_group.items():
        run = runs[f"model group: {name}"]
        assert run.info.status == "FINISHED"
        assert run.data.metrics["total/requests"] == count, name
        assert run.data.metrics["total/errors"] == errors[name], name
        hourly = client.get_metric_history(run.info.run_id, "hour/requests")
        assert sum(point.value for point in hourly) == count and all(point.step < 10**6 for point in hourly)


def test_mlflow_restart_mid_run_loses_nothing(stack, client):
    before = len(all_traces(client))
    failed_before = stack.consumer.totals.failed
    succeeded_before = stack.consumer.totals.succeeded
    plans = plan_requests(12, seed=23)
    stack.mlflow.stop(hard=True)
    try:
        report = send_all(stack.proxy_url, plans, concurrency=4)
        assert not report.unexpected
        # The consumer takes the events and fails them (MLflow is down): none may be acknowledged. (The callback
        # packs several events a message, so the queue holds the outage's events in 1 to 12 messages.)
        poll(lambda: stack.consumer.totals.failed > failed_before, 60, "a batch failed while MLflow is down")
        poll(lambda: stack.queue_depth() >= 1, 30, "the outage's events kept in the queue")
        assert stack.consumer.totals.succeeded == succeeded_before
    finally:
        stack.mlflow.start()
    wait_landed(stack, client, before + len(plans))
    found = traces_by_call_id(client, [sent.call_id for sent in report.sent])
    assert {call_id: len(traces) for call_id, traces in found.items()} == {s.call_id: 1 for s in report.sent}
    assert len(all_traces(client)) == before + len(plans)
    assert stack.queue_depth(stack.dlq_url) == 0


def test_poison_message_ends_in_the_dlq_and_nothing_else_does(stack, client):
    before = len(all_traces(client))
    marker = str(uuid.uuid4())
    poison = f"not json {marker}"
    stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=poison)
    plans = plan_requests(6, seed=31)
    send_all(stack.proxy_url, plans, concurrency=3)
    poll(
        lambda: stack.queue_depth(stack.dlq_url) == 1 and stack.queue_depth() == 0, 120, "the poison message in the DLQ"
    )
    dead = stack.dlq_messages()
    assert [m["Body"] for m in dead] == [poison]
    # The consumer dead-letters it itself on the first receive, saying why (no waiting for the redrive policy).
    reason = dead[0]["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]
    assert reason and marker not in reason  # the reason names what is wrong, never the content
    wait_landed(stack, client, before + len(plans))
    assert len(all_traces(client)) == before + len(plans)
