"""Usage figures and their EMF documents, without AWS: what is counted, how it is split, what the switches do."""

from __future__ import annotations

import pytest

from litellm_mlflow import usage_metrics as names
from litellm_mlflow.sink import usage_emf
from litellm_mlflow.sink.writer import WriteResult
from litellm_mlflow.usage_metrics import batch_usage, monthly_metric_cost_usd, stored_calls
from tests.support.emf import emf_documents, emf_metrics, values_by
from tests.support.usage_calls import call


def test_only_newly_stored_calls_count_once_each() -> None:
    events = [call("a"), call("b"), call("a"), call("c"), call("d")]
    stored = stored_calls(events, failed={1}, already_stored={3})
    assert [event.event_id for event in stored] == ["a", "d"]


def test_figures_by_model_group_and_team() -> None:
    usage = batch_usage(
        [
            call("1", latency=0.1),
            call("2", ok=False, prompt_tokens=7, completion_tokens=None, cost_usd=None, latency=0.3),
            call("3", group="embed", team=None, cost_usd=0.5),
            call("4", team=None, model_group=None, group="x"),
        ]
    )
    chat = usage.by_model_group["chat"]
    assert (chat.calls, chat.errors, chat.input_tokens, chat.output_tokens) == (2, 1, 17, 5)
    assert chat.cost_usd == pytest.approx(0.001)
    assert chat.latencies_ms == pytest.approx([100.0, 300.0])
    assert chat.error_rate_percent == 50.0
    assert usage.by_model_group["x-model"].calls == 1  # no model group: the model's name
    assert set(usage.by_team) == {"search"} and usage.by_team["search"].calls == 2
    assert usage.calls == 4


def test_documents_stay_within_emf_limits_and_add_up(capsys: pytest.CaptureFixture[str]) -> None:
    events = [call(str(i), ok=i % 4 != 0, latency=i / 1000) for i in range(250)]
    usage_emf.emit(batch_usage(events))
    documents = emf_documents(capsys.readouterr().out)
    metrics = emf_metrics(documents)
    assert len(documents) == 3 + 1  # 250 calls = 3 documents of <= 100 values for the group, 1 for the team
    assert all(len(metric.values) <= 100 for metric in metrics)  # EMF limit
    assert all(metric.namespace == names.NAMESPACE for metric in metrics)
    group = values_by(metrics, names.MODEL_GROUP)["chat"]
    assert group[names.CALLS] == [250] and group[names.ERRORS] == [63]
    assert sorted(group[names.LATENCY]) == pytest.approx([float(i) for i in range(250)])
    assert sum(group[names.ERROR_RATE]) / len(group[names.ERROR_RATE]) == pytest.approx(100 * 63 / 250)
    assert values_by(metrics, names.TEAM)["search"] == {names.CALLS: [250], names.COST: [pytest.approx(0.25)]}


def test_switches_team_metrics_off_and_metrics_disabled(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    events = [call(str(i)) for i in range(150)]
    monkeypatch.setenv(names.TEAM_METRICS_ENV, "false")
    usage = usage_emf.publish_usage(events, WriteResult(total=len(events)))
    metrics = emf_metrics(emf_documents(capsys.readouterr().out))
    assert usage.by_team["search"].calls == 150  # still computed (the demo shows it), just not published
    assert {tuple(metric.dimensions) for metric in metrics} == {(names.MODEL_GROUP,)}

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")  # what the local demo sets
    usage_emf.publish_usage(events, WriteResult(total=len(events)))
    assert emf_documents(capsys.readouterr().out) == []


def test_a_bad_switch_value_is_named_and_metrics_stay_on(caplog: pytest.LogCaptureFixture) -> None:
    assert usage_emf.team_metrics_enabled({names.TEAM_METRICS_ENV: "ture"}) is True
    assert "LITELLM_MLFLOW_TEAM_METRICS='ture'" in caplog.text
    assert usage_emf.team_metrics_enabled({names.TEAM_METRICS_ENV: "Off"}) is False


def test_listeners_see_each_batch() -> None:
    seen = []
    usage_emf.add_listener(seen.append)
    try:
        usage_emf.publish_usage([call("1"), call("2")], WriteResult(total=2, failed={0: "down"}))
    finally:
        usage_emf.remove_listener(seen.append)
    assert [usage.calls for usage in seen] == [1]


def test_monthly_cost_per_model_group_and_team() -> None:
    assert monthly_metric_cost_usd(1, 0) == 2.10
    assert monthly_metric_cost_usd(0, 1) == 0.60
    assert monthly_metric_cost_usd(10, 20, team_metrics=False) == 21.00


def test_an_emission_failure_is_logged_and_never_fails_the_batch(monkeypatch, caplog) -> None:
    def broken(*args, **kwargs):
        raise ValueError("no stdout")

    monkeypatch.setattr(usage_emf, "_flush", broken)
    usage = usage_emf.publish_usage([call("1")], WriteResult(total=1))
    assert usage.calls == 1
    assert "usage metrics not emitted: ValueError: no stdout" in caplog.text
