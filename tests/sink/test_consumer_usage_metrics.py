"""The consumer's EMF output for real LiteLLM calls through a real MLflow: every usage figure, per model group and
per team, checked against the payloads LiteLLM logged; a redelivered batch is not counted twice where the sink can
tell (the SDK trace path)."""

from __future__ import annotations

import contextlib

import litellm
import pytest

from litellm_mlflow import usage_metrics as names
from tests.support.emf import emf_documents, emf_metrics, values_by
from tests.support.litellm_events import sqs_event, sqs_record

MESSAGES = [{"role": "user", "content": "What is MLflow?"}]


def _real_calls(capture) -> list[dict]:
    """Two model groups, two teams and a call with no team; one failure."""
    plan = [
        ("gpt-4o-mini", "search", "MLflow tracks experiments."),
        ("gpt-4o-mini", "search", "litellm.RateLimitError"),
        ("gpt-4o-mini", None, "A platform for the ML lifecycle."),
        ("gpt-4o", "ads", "It is open source."),
    ]
    for model, team, response in plan:
        metadata = {"user_api_key_team_alias": team} if team else {}
        with contextlib.suppress(litellm.RateLimitError):
            litellm.completion(model=model, messages=MESSAGES, mock_response=response, metadata=metadata)
    return capture.wait_for(len(plan))


def _expected(payloads: list[dict], key) -> dict[str, dict[str, object]]:
    """The figures straight from LiteLLM's payloads, grouped by `key(payload)`."""
    out: dict[str, dict[str, object]] = {}
    for payload in payloads:
        group = key(payload)
        if group is None:
            continue
        figures = out.setdefault(group, {"calls": 0, "errors": 0, "in": 0, "out": 0, "cost": 0.0, "latency": []})
        figures["calls"] += 1
        figures["errors"] += payload["status"] != "success"
        figures["in"] += payload["prompt_tokens"] or 0
        figures["out"] += payload["completion_tokens"] or 0
        figures["cost"] += payload["response_cost"] or 0.0
        figures["latency"].append((payload["endTime"] - payload["startTime"]) * 1000)
    return out


def test_emf_output_carries_every_usage_figure_of_a_real_batch(consumer, litellm_capture, capsys) -> None:
    payloads = _real_calls(litellm_capture)
    assert {p["metadata"].get("user_api_key_team_alias") for p in payloads} == {"search", "ads", None}
    capsys.readouterr()

    assert consumer(sqs_event([sqs_record(p) for p in payloads])) == {"batchItemFailures": []}

    metrics = emf_metrics(emf_documents(capsys.readouterr().out))
    groups = values_by(metrics, names.MODEL_GROUP)
    expected = _expected(payloads, lambda p: p["model_group"] or p["model"])
    assert set(groups) == set(expected) == {"gpt-4o-mini", "gpt-4o"}
    for group, want in expected.items():
        got = groups[group]
        assert got[names.CALLS] == [want["calls"]]
        assert got[names.ERRORS] == [want["errors"]]
        assert got[names.INPUT_TOKENS] == [want["in"]] and got[names.OUTPUT_TOKENS] == [want["out"]]
        assert got[names.COST] == [pytest.approx(want["cost"])] and want["cost"] > 0
        assert sorted(got[names.LATENCY]) == pytest.approx(sorted(want["latency"]), abs=0.01)
        flags = [100.0] * want["errors"] + [0.0] * (want["calls"] - want["errors"])
        assert sorted(got[names.ERROR_RATE]) == sorted(flags)
    teams = values_by(metrics, names.TEAM)
    expected_teams = _expected(payloads, lambda p: p["metadata"].get("user_api_key_team_alias"))
    assert set(teams) == {"search", "ads"}
    for team, want in expected_teams.items():
        assert teams[team] == {names.CALLS: [want["calls"]], names.COST: [pytest.approx(want["cost"])]}
    units = {metric.name: metric.unit for metric in metrics if names.MODEL_GROUP in metric.dimensions}
    assert units == {
        names.CALLS: "Count", names.ERRORS: "Count", names.ERROR_RATE: "Percent", names.INPUT_TOKENS: "Count",
        names.OUTPUT_TOKENS: "Count", names.COST: "None", names.LATENCY: "Milliseconds",
    }  # fmt: skip
    pipeline = values_by(metrics, names.SERVICE)[names.CONSUMER_SERVICE]
    assert pipeline[names.EVENTS_WRITTEN] == [4] and pipeline[names.EVENTS_FAILED] == [0]
    assert set(pipeline) == set(names.PIPELINE_METRICS)


def test_redelivered_stored_calls_are_not_counted_again_on_the_sdk_path(
    consumer, litellm_capture, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("LITELLM_MLFLOW_TRACE_WRITER", "sdk")
    payloads = _real_calls(litellm_capture)
    records = [sqs_record(p) for p in payloads]
    capsys.readouterr()
    # The same event twice in one batch (a publisher retry) counts once.
    assert consumer(sqs_event([*records, sqs_record(payloads[0])])) == {"batchItemFailures": []}
    first = values_by(emf_metrics(emf_documents(capsys.readouterr().out)), names.MODEL_GROUP)
    assert sum(figures[names.CALLS][0] for figures in first.values()) == 4

    redelivered = [sqs_record(p, receive_count=2) for p in payloads]
    assert consumer(sqs_event(redelivered)) == {"batchItemFailures": []}
    again = emf_metrics(emf_documents(capsys.readouterr().out))
    assert values_by(again, names.MODEL_GROUP) == {} and values_by(again, names.TEAM) == {}
    assert values_by(again, names.SERVICE)[names.CONSUMER_SERVICE][names.EVENTS_WRITTEN] == [4]
