"""The usage rollup against a real MLflow server of every supported version: traces written by the real sink,
summaries read back through MLflow's API. Redelivery, a second consumer and a second rollup pass change nothing;
a late trace reopens its hour and the next pass corrects the hour, its day and the totals after it. Per-deployment
runs the per-call writer left RUNNING are finished, once."""

from __future__ import annotations

import uuid

import pytest
from mlflow import MlflowClient

from litellm_mlflow.events import LLMCallEvent
from litellm_mlflow.rollup.leftover_runs import PER_CALL_RUN_TAG
from litellm_mlflow.rollup.rollup import Rollup
from litellm_mlflow.rollup.summary_runs import SUMMARY_KEY_TAG
from litellm_mlflow.sink import MlflowSink, SinkSettings
from litellm_mlflow.sink.metrics import MODEL_KEY_TAG

DAY = 20_420  # 2025-11-30 (UTC), well in the past: every hour of it is closed and any trace stored now is late
HOUR_22, HOUR_23 = DAY * 24 + 22, DAY * 24 + 23


def call(n: int, hour: int, group: str, team: str | None, *, ok: bool = True, latency: float = 0.5, stream=False):
    start = hour * 3600 + 60 + n
    return LLMCallEvent(
        event_id=f"evt-{group}-{hour}-{n}",
        model=f"{group}-deployment",
        model_group=group,
        start_time=start,
        end_time=start + latency,
        status="success" if ok else "failure",
        prompt_tokens=100 if ok else None,
        completion_tokens=10 if ok else None,
        total_tokens=110 if ok else None,
        cost_usd=0.25 if ok and group == "chat" else None,
        team_alias=team,
        stream=stream,
        completion_start_time=start + 0.2 if stream else None,
    )


EVENTS = [
    call(0, HOUR_22, "chat", "search", latency=0.4),
    call(1, HOUR_22, "chat", "search", latency=0.6),
    call(2, HOUR_22, "chat", None, ok=False, latency=0.1),
    call(0, HOUR_23, "chat", "search", latency=1.0, stream=True),
    call(1, HOUR_23, "chat", "ads", latency=2.0, stream=True),
    call(0, HOUR_23, "fast", "ads", latency=0.2),
]


def write(server_url: str, experiment: str, events: list[LLMCallEvent]) -> None:
    sink = MlflowSink(SinkSettings(server_url, experiment))
    result = sink.write(events)
    assert not result.failed, result.failed


def series(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, int, float]]:
    return sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, key))


def summary_runs(client: MlflowClient, experiment_id: str) -> dict[str, object]:
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{SUMMARY_KEY_TAG}` LIKE '%'")
    names = [run.info.run_name for run in runs]
    assert len(names) == len(set(names)), f"one run per summary, got {names}"
    return {run.info.run_name: run for run in runs}


@pytest.fixture
def rolled_up(versioned_mlflow_server):
    """An experiment with EVENTS stored (twice, by two sink instances) and one rollup pass after the day closed."""
    url = versioned_mlflow_server.url
    experiment = f"rollup-{uuid.uuid4().hex[:8]}"
    write(url, experiment, EVENTS)
    write(url, experiment, EVENTS[::-1])  # a second consumer, or SQS redelivering the whole batch
    client = MlflowClient(url)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    rollup = Rollup(client, experiment_id, grace_s=900, clock_margin_s=0)  # one clock here
    report = rollup.run(now_s=(DAY + 1) * 86400 + 1800)
    return url, experiment, client, experiment_id, rollup, report


def test_rollup_writes_each_closed_hour_its_day_and_running_totals(rolled_up) -> None:
    _, _, client, experiment_id, _, report = rolled_up
    assert report.hours_written == [HOUR_22, HOUR_23] and report.traces_read == len(EVENTS)
    runs = summary_runs(client, experiment_id)
    assert set(runs) == {"model group: chat", "model group: fast", "team: search", "team: ads"}
    chat = runs["model group: chat"]
    assert chat.info.status == "FINISHED"
    run_id = chat.info.run_id
    # A model output is what MLflow 3's GenAI page keys on: such runs are "Training runs", not "Evaluation runs".
    assert client.get_run(run_id).outputs.model_outputs
    assert len(client.search_runs([experiment_id])) == 4  # the consumer made no per-deployment run
    hour_ms = 3_600_000
    starts = [HOUR_22 * hour_ms, HOUR_23 * hour_ms]
    assert series(client, run_id, "hour/requests") == [(HOUR_22, starts[0], 3.0), (HOUR_23, starts[1], 2.0)]
    assert series(client, run_id, "hour/errors") == [(HOUR_22, starts[0], 1.0), (HOUR_23, starts[1], 0.0)]
    assert [v for _, _, v in series(client, run_id, "hour/error_rate")] == [pytest.approx(1 / 3), 0.0]
    assert [v for _, _, v in series(client, run_id, "hour/input_tokens")] == [200.0, 200.0]
    assert [v for _, _, v in series(client, run_id, "hour/cost_usd")] == [0.5, 0.5]
    assert [v for _, _, v in series(client, run_id, "total/requests")] == [3.0, 5.0]
    assert [v for _, _, v in series(client, run_id, "total/cost_usd")] == [0.5, 1.0]
    assert series(client, run_id, "day/requests") == [(DAY, DAY * 86_400_000, 5.0)]
    assert series(client, run_id, "day/errors")[0][2] == 1.0
    assert series(client, run_id, "hour/ttft_p50_ms") == [(HOUR_23, HOUR_23 * hour_ms, pytest.approx(200, rel=0.01))]
    p50 = series(client, run_id, "hour/latency_p50_ms")
    assert p50[0][2] == pytest.approx(400, rel=0.01) and p50[1][2] == pytest.approx(1000, rel=0.01)
    assert series(client, run_id, "hour/latency_p95_ms")[1][2] == pytest.approx(2000, rel=0.01)
    fast = runs["model group: fast"].info.run_id
    assert series(client, fast, "hour/unpriced_requests")[-1][2] == 1.0
    assert series(client, fast, "hour/requests") == [(HOUR_23, HOUR_23 * hour_ms, 1.0)]  # a run from its first call
    ads = runs["team: ads"].info.run_id
    assert series(client, ads, "day/requests")[0][2] == 2.0 and series(client, ads, "total/requests")[-1][2] == 2.0
    assert runs["model group: chat"].data.metrics["total/requests"] == 5.0  # what the runs table shows


def test_a_second_pass_and_a_second_rollup_at_once_change_nothing(rolled_up) -> None:
    url, experiment, client, experiment_id, rollup, _ = rolled_up
    before = {name: run.info.run_id for name, run in summary_runs(client, experiment_id).items()}
    write(url, experiment, EVENTS[:3])  # redelivered after the rollup: stored already, so not late figures
    again = rollup.run(now_s=(DAY + 1) * 86400 + 2400)
    assert again.hours_written == [] and again.runs_rebuilt == []
    client.set_experiment_tag(experiment_id, "litellm_mlflow.rollup.through_hour", str(HOUR_22 - 1))
    twin = Rollup(client, experiment_id, grace_s=900, clock_margin_s=0).run(now_s=(DAY + 1) * 86400 + 2400)
    assert twin.hours_written == [HOUR_22, HOUR_23]
    runs = summary_runs(client, experiment_id)
    assert {name: run.info.run_id for name, run in runs.items()} == before
    chat = runs["model group: chat"].info.run_id
    assert [v for _, _, v in series(client, chat, "hour/requests")] == [3.0, 2.0]
    assert [v for _, _, v in series(client, chat, "total/requests")] == [3.0, 5.0]
    assert len(series(client, chat, "day/latency_p50_ms")) == 1


def test_a_late_trace_reopens_its_hour_and_the_next_pass_corrects_hour_day_and_totals(rolled_up) -> None:
    url, experiment, client, experiment_id, rollup, _ = rolled_up
    old_chat = summary_runs(client, experiment_id)["model group: chat"].info.run_id
    write(url, experiment, [call(9, HOUR_22, "chat", "search", latency=3.0)])  # stored long after its hour closed
    tags = client.get_experiment(experiment_id).tags
    assert f"litellm_mlflow.late.{HOUR_22}" in tags
    report = rollup.run(now_s=(DAY + 1) * 86400 + 3000)
    assert HOUR_22 in report.hours_rechecked
    assert sorted(report.runs_rebuilt) == ["model group: chat", "team: search"]
    # Only the hour is read again: its day is the merge of the runs' hour states (hours 0-21 had no calls for them).
    assert report.traces_read == 4
    runs = summary_runs(client, experiment_id)
    chat = runs["model group: chat"].info.run_id
    assert chat != old_chat and client.get_run(old_chat).info.lifecycle_stage == "deleted"
    assert runs["model group: chat"].info.status == "FINISHED"
    assert [v for _, _, v in series(client, chat, "hour/requests")] == [4.0, 2.0]
    assert [v for _, _, v in series(client, chat, "total/requests")] == [4.0, 6.0]
    assert [v for _, _, v in series(client, chat, "total/cost_usd")] == [0.75, 1.25]
    assert [v for _, _, v in series(client, chat, "day/requests")] == [6.0]
    assert [v for _, _, v in series(client, chat, "hour/errors")] == [1.0, 0.0]
    assert series(client, chat, "hour/latency_p95_ms")[0][2] == pytest.approx(3000, rel=0.01)
    search = runs["team: search"].info.run_id
    assert [v for _, _, v in series(client, search, "day/requests")] == [4.0]
    assert runs["model group: fast"].info.run_id == summary_runs(client, experiment_id)["model group: fast"].info.run_id
    quiet = rollup.run(now_s=(DAY + 1) * 86400 + 3600)
    assert quiet.runs_rebuilt == [] and quiet.hours_rechecked == []


def test_per_deployment_runs_left_running_by_the_per_call_writer_are_finished_once(versioned_mlflow_server) -> None:
    url = versioned_mlflow_server.url
    experiment = f"leftover-{uuid.uuid4().hex[:8]}"
    old_writer = MlflowSink(SinkSettings(url, experiment, call_metrics=True))  # the layout before the rollup
    assert not old_writer.write(EVENTS[:3]).failed
    client = MlflowClient(url)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    assert PER_CALL_RUN_TAG == MODEL_KEY_TAG
    leftover = client.search_runs([experiment_id], filter_string=f"tags.`{PER_CALL_RUN_TAG}` LIKE '%'")
    assert [run.info.status for run in leftover] == ["RUNNING"]  # what the UI showed forever
    run_id = leftover[0].info.run_id
    rollup = Rollup(client, experiment_id, grace_s=900, clock_margin_s=0)

    assert rollup.run(now_s=(DAY + 1) * 86400 + 1800).leftover_runs_finished == [run_id]
    finished = client.get_run(run_id)
    assert finished.info.status == "FINISHED" and finished.info.end_time
    assert finished.outputs.model_outputs  # listed with the training runs, not under "Evaluation runs"
    assert finished.data.metrics["latency_ms"] > 0  # its history is kept

    assert rollup.run(now_s=(DAY + 1) * 86400 + 1800).leftover_runs_finished == []  # idempotent
    unchanged = client.get_run(run_id).info
    assert (unchanged.status, unchanged.end_time) == ("FINISHED", finished.info.end_time)
    # A consumer still opted in to per-call points keeps writing to the finished run; it stays finished.
    assert not old_writer.write(EVENTS[3:5]).failed
    assert client.get_run(run_id).info.status == "FINISHED"
    assert sorted(value for _, _, value in series(client, run_id, "requests")) == [2.0, 3.0]
