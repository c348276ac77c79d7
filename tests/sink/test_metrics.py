"""Metric points: identical on redelivery, distinct per call, chunked within log_batch limits."""

from __future__ import annotations

import pytest
from packaging.version import Version

from litellm_mlflow.events import event_from_payload
from litellm_mlflow.sink.metrics import (
    batch_rate_metrics,
    call_metrics,
    metric_requests,
    point_position,
    points_per_request,
)

END = 1_790_000_000.5


def event(event_id: str, **overrides):
    payload = {
        "id": event_id,
        "model": "gpt-4o-mini",
        "startTime": END - 0.25,
        "endTime": END,
        "status": "success",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "response_cost": "0.002",
        "cache_hit": False,
    }
    payload.update(overrides)
    return event_from_payload(payload)


def test_call_points_are_a_pure_function_of_the_event():
    first = call_metrics(event("a"))
    assert first == call_metrics(event("a"))
    by_key = {metric.key: metric for metric in first}
    assert by_key["latency_ms"].value == 250.0
    assert by_key["cost_usd"].value == 0.002  # numeric string converted
    assert by_key["error"].value == 0.0 and by_key["cache_hit"].value == 0.0
    assert "ttft_ms" not in by_key  # not a stream
    assert {metric.timestamp for metric in first} == {round(END * 1000)}


def test_two_calls_ending_in_the_same_millisecond_get_distinct_steps():
    steps = {call_metrics(event(f"call-{i}"))[0].step for i in range(2000)}
    assert len(steps) == 2000  # 31-bit steps per event id: a collision is about 1 in 2e9 per pair
    timestamp, step = point_position(END, "call-1")
    assert timestamp == round(END * 1000) and 0 <= step < 2**31
    assert point_position(END, "call-1") == (timestamp, step)


def test_stream_and_failure_points():
    streamed = {m.key: m.value for m in call_metrics(event("s", stream=True, completionStartTime=END - 0.15))}
    assert streamed["ttft_ms"] == pytest.approx(100.0)
    failed = {m.key: m.value for m in call_metrics(event("f", status="failure", prompt_tokens=None))}
    assert failed["error"] == 1.0 and "prompt_tokens" not in failed


def test_batch_rates_depend_only_on_the_set_of_calls():
    calls = [event("a"), event("b", status="failure"), event("c", cache_hit=True), event("d")]
    rates = {metric.key: metric for metric in batch_rate_metrics(calls)}
    assert rates["requests"].value == 4.0
    assert rates["error_rate"].value == 0.25
    assert rates["cache_hit_rate"].value == 0.25
    assert batch_rate_metrics(list(reversed(calls))) == batch_rate_metrics(calls)
    assert batch_rate_metrics(calls[:2])[0].step != rates["requests"].step


def test_requests_stay_within_log_batch_limits_with_rates_last():
    calls = [event(f"e{i}") for i in range(300)]  # 7 points each: 2,100 points + 3 rates
    chunks = metric_requests(calls)
    assert [len(chunk) for chunk in chunks] == [1000, 1000, 103]
    assert [metric.key for metric in chunks[-1][-3:]] == ["requests", "error_rate", "cache_hit_rate"]
    assert all(metric.key not in ("requests", "error_rate") for chunk in chunks[:-1] for metric in chunk)
    exact = metric_requests(calls[:1], limit=7)
    assert [len(chunk) for chunk in exact] == [7, 3]


def test_old_servers_get_requests_of_at_most_100_points():
    assert points_per_request(Version("3.0.1")) == points_per_request(Version("3.9.0")) == 100
    assert points_per_request(None) == 100
    assert points_per_request(Version("3.10.0")) == points_per_request(Version("3.17.2")) == 1000
    chunks = metric_requests([event(f"e{i}") for i in range(30)], limit=100)
    assert [len(chunk) for chunk in chunks] == [100, 100, 13]


def test_rates_count_only_the_calls_given_as_new():
    calls = [event("a"), event("b", status="failure"), event("c")]
    last = metric_requests(calls, counted=calls[1:])[-1]
    rates = {metric.key: metric.value for metric in last if metric.key in ("requests", "error_rate")}
    assert rates == {"requests": 2.0, "error_rate": 0.5}
    assert not any(metric.key == "requests" for metric in metric_requests(calls, counted=[])[-1])
