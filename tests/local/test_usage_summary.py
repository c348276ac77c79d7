"""The demo's usage lines come from the consumer's own usage figures (the listener), stored calls only."""

from __future__ import annotations

from litellm_mlflow.local.usage_summary import UsageTotals
from litellm_mlflow.sink.usage_emf import publish_usage
from litellm_mlflow.sink.writer import WriteResult
from tests.support.usage_calls import call


def test_demo_summary_totals_what_the_consumer_published(monkeypatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    totals = UsageTotals().subscribe()
    try:
        publish_usage([call("1"), call("2", ok=False), call("3", group="embed", team=None)], WriteResult(total=3))
        publish_usage([call("4", cost_usd=0.5), call("5")], WriteResult(total=2, failed={1: "MLflow down"}))
    finally:
        totals.unsubscribe()
    publish_usage([call("6")], WriteResult(total=1))  # after unsubscribing: not counted

    lines = totals.lines()
    (chat,) = [line for line in lines if "model group chat" in line]
    assert "calls    3" in chat and "errors   1 ( 33%)" in chat and "tokens 30/15" in chat and "$0.502000" in chat
    (embed,) = [line for line in lines if "model group embed" in line]
    assert "calls    1" in embed and "$0.001000" in embed
    (team,) = [line for line in lines if "team search" in line]
    assert "calls    3" in team and "$0.502000" in team


def test_demo_summary_without_teams_says_why() -> None:
    lines = UsageTotals().lines()
    assert "no calls stored yet" in lines[1] and "master key" in lines[2]


def test_unpriced_calls_read_as_unknown_not_free(monkeypatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    unpriced = {"cost_usd": None, "cost_unknown": True}
    totals = UsageTotals().subscribe()
    try:
        publish_usage(
            [call("1", group="acme", **unpriced), call("2", group="acme", ok=False, cost_usd=None),
             call("3", **unpriced), call("4")],
            WriteResult(total=4),
        )  # fmt: skip
    finally:
        totals.unsubscribe()
    lines = totals.lines()
    (acme,) = [line for line in lines if "model group acme" in line]
    assert "cost unknown (1 unpriced call(s))" in acme and "$" not in acme
    (chat,) = [line for line in lines if "model group chat" in line]
    assert "cost $0.001000 + 1 unpriced call(s)" in chat
