"""Traces days late (a dead-letter redrive after an MLflow outage), against a real MLflow server: a trace 3 days late
and one 20 days late, touching several summary runs, leave figures equal to a rollup that saw every trace on time,
and only their hours are read again (their days come from the runs' hour states, kept 30 days). A correction cut by
the pass's deadline is finished by the next pass. A trace older than the hour states kept is reported, not retried.
Hour states of a busy hour fit the run tag limit of every server version."""

from __future__ import annotations

import math
import random
import uuid
from typing import Any

from mlflow import MlflowClient

from litellm_mlflow.events import LLMCallEvent
from litellm_mlflow.rollup.figures import CallRecord, WindowPartial
from litellm_mlflow.rollup.rollup import KEEP_HOUR_STATES, Rollup
from litellm_mlflow.rollup.state import STATES_SINCE_TAG, THROUGH_TAG, RollupState
from litellm_mlflow.rollup.summary_runs import HOUR_TAG_PREFIX, HourState, Kind, SummaryKey, SummaryRuns
from litellm_mlflow.sink import MlflowSink, SinkSettings
from tests.rollup.test_resumable_hour import Clock, WatchedClient, summary_runs

D0 = 20_400  # 2025-11-10: the day of the trace 20 days late
D17, D20 = D0 + 17, D0 + 20  # the day of the trace 3 days late; the day the late traces are stored
H0, H17 = D0 * 24 + 9, D17 * 24 + 14  # the hours the late traces belong to
NOW_S = D20 * 86400 + 2 * 3600 + 900  # the rollup has written through hour 1 of D20
GRACE_S = 900


def event(tag: str, n: int, hour: int, group: str, team: str | None, ok: bool = True) -> LLMCallEvent:
    start = hour * 3600 + 30 + 97 * n % 3500
    return LLMCallEvent(
        event_id=f"{tag}-{hour}-{n}", model=f"{group}-dep", model_group=group, start_time=start,
        end_time=start + 0.1 * (1 + n % 17), status="success" if ok else "failure",
        prompt_tokens=20 + n if ok else None, completion_tokens=3 + n % 7 if ok else None,
        cost_usd=(0.25, 0.125, None)[n % 3] if ok else None, team_alias=team,
        stream=n % 2 == 0, completion_start_time=start + 0.05 * (1 + n % 5) if n % 2 == 0 else None,
    )  # fmt: skip


def base_events(tag: str) -> list[LLMCallEvent]:
    """Calls in several hours of D0 and D17 (the late hours among them), mixed groups, teams and failures."""
    groups, teams = ("chat", "fast", "coder"), ("search", "ads", None)
    events = []
    for day, hours in ((D0, (3, 9, 17, 23)), (D17, (0, 14, 15, 22))):
        for h in hours:
            for n in range(4):
                i = len(events)
                events.append(event(tag, n, day * 24 + h, groups[i % 3], teams[i % 3], ok=i % 7 != 3))
    return events


def late_events(tag: str) -> list[LLMCallEvent]:
    return [
        event(tag, 50, H17, "chat", "search"),
        event(tag, 51, H17, "coder", "ads", ok=False),
        event(tag, 52, H0, "fast", "ads"),
        event(tag, 53, H0, "chat", None),
    ]


def store(url: str, experiment: str, events: list[LLMCallEvent]) -> None:
    assert not MlflowSink(SinkSettings(url, experiment)).write(events).failed


def roll_up_through_now(client: Any, experiment_id: str) -> None:
    """Passes over D0, then D17, then the first hours of D20 (the hours between have no traces; they are skipped by
    moving the progress tag, as passes over empty hours would leave the same points)."""
    rollup = Rollup(client, experiment_id, grace_s=GRACE_S, clock_margin_s=0, backfill_hours=30 * 24)
    assert rollup.run(now_s=(D0 + 1) * 86400 + GRACE_S + 1).hours_written[-1] == D0 * 24 + 23
    client.set_experiment_tag(experiment_id, THROUGH_TAG, str(D17 * 24 - 1))
    assert rollup.run(now_s=(D17 + 1) * 86400 + GRACE_S + 1).hours_written[-1] == D17 * 24 + 23
    client.set_experiment_tag(experiment_id, THROUGH_TAG, str(D20 * 24 - 1))
    assert rollup.run(now_s=NOW_S).hours_written == [D20 * 24, D20 * 24 + 1]


def figures(client: MlflowClient, experiment_id: str) -> dict[str, tuple[dict[str, str], dict[str, list[tuple]]]]:
    """Per summary run: its hour states and every metric point."""
    result = {}
    for run in summary_runs(client, experiment_id):
        history = {
            key: sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(run.info.run_id, key))
            for key in run.data.metrics
        }
        states = {k: v for k, v in run.data.tags.items() if k.startswith(HOUR_TAG_PREFIX)}
        result[run.info.run_name] = (states, history)
    return result


def experiment(url: str) -> tuple[MlflowClient, str, str]:
    name = f"late-days-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(url)
    return client, name, client.create_experiment(name)


def test_traces_3_and_20_days_late_give_the_figures_of_an_on_time_rollup_reading_only_their_hours(mlflow_server):
    tag = f"days-{uuid.uuid4().hex[:6]}"
    base, late = base_events(tag), late_events(tag)
    on_time_client, on_time, on_time_id = experiment(mlflow_server.url)
    store(mlflow_server.url, on_time, base + late)
    roll_up_through_now(on_time_client, on_time_id)
    expected = figures(on_time_client, on_time_id)

    client, name, experiment_id = experiment(mlflow_server.url)
    store(mlflow_server.url, name, base)
    roll_up_through_now(client, experiment_id)
    before = figures(client, experiment_id)
    assert before != expected
    assert all(f"{HOUR_TAG_PREFIX}{D0 * 24 + 3}" in states for states, _ in before.values()), "20 days of states kept"
    store(mlflow_server.url, name, late)
    tags = client.get_experiment(experiment_id).tags
    assert {f"litellm_mlflow.late.{H0}", f"litellm_mlflow.late.{H17}"} <= set(tags)

    # The correction, cut by the deadline inside the first hour it re-reads (pages of 1: the hour is read in slices).
    clock = Clock()

    def before_search(kwargs: dict[str, Any]) -> None:
        if sum(watched.first_pages.values()) >= 3:
            clock.now = 100.0

    watched = WatchedClient(client, before_search)
    cut = Rollup(watched, experiment_id, grace_s=GRACE_S, clock_margin_s=0, page_size=1, clock=clock).run(
        now_s=NOW_S, deadline=10.0
    )
    assert cut.hours_rechecked == [] and cut.unfinished_hour == H0 and cut.slices_saved == cut.slices_read > 0
    assert cut.runs_rebuilt == []

    finished = Rollup(client, experiment_id, grace_s=GRACE_S, clock_margin_s=0).run(now_s=NOW_S)
    assert finished.hours_rechecked == [H0, H17] and finished.hours_written == []
    assert finished.slices_reused == cut.slices_saved and finished.late_hours_too_old == []
    h0_runs = ["model group: fast", "model group: chat", "team: ads"]
    h17_runs = ["model group: chat", "model group: coder", "team: search", "team: ads"]
    assert sorted(finished.runs_rebuilt) == sorted(set(h0_runs + h17_runs))  # once each, for both hours
    in_late_hours = [e for e in base + late if int(e.start_time // 3600) in (H0, H17)]
    # Only the two hours were read (once), never their days: the days are the merge of the runs' hour states.
    assert cut.traces_read + finished.traces_read == len(in_late_hours) == 12
    assert figures(client, experiment_id) == expected

    quiet = Rollup(client, experiment_id, grace_s=GRACE_S, clock_margin_s=0).run(now_s=NOW_S + 600)
    assert quiet.hours_rechecked == [] and quiet.runs_rebuilt == [] and quiet.traces_read == 0


def test_a_trace_older_than_the_hour_states_kept_is_reported_and_not_retried(mlflow_server):
    tag = f"old-{uuid.uuid4().hex[:6]}"
    client, name, experiment_id = experiment(mlflow_server.url)
    store(mlflow_server.url, name, [e for e in base_events(tag) if e.start_time < (D0 + 1) * 86400])
    rollup = Rollup(client, experiment_id, grace_s=GRACE_S, clock_margin_s=0, backfill_hours=30 * 24)
    rollup.run(now_s=(D0 + 1) * 86400 + GRACE_S + 1)
    newest = D0 * 24 + KEEP_HOUR_STATES + 12  # hour states of D0 are gone once this hour is written
    client.set_experiment_tag(experiment_id, THROUGH_TAG, str(newest - 1))
    rollup.run(now_s=(newest + 1) * 3600 + GRACE_S + 1)
    assert all(f"{HOUR_TAG_PREFIX}{H0}" not in states for states, _ in figures(client, experiment_id).values())
    before = figures(client, experiment_id)
    store(mlflow_server.url, name, late_events(tag)[2:])  # 31 days late
    assert f"litellm_mlflow.late.{H0}" in client.get_experiment(experiment_id).tags

    report = rollup.run(now_s=(newest + 1) * 3600 + GRACE_S + 60)
    assert report.late_hours_too_old == [H0] and report.hours_rechecked == [] and report.traces_read == 0
    assert report.runs_rebuilt == [] and figures(client, experiment_id) == before
    again = rollup.run(now_s=(newest + 1) * 3600 + GRACE_S + 120)
    assert again.late_hours_too_old == [] and again.traces_read == 0  # reported once, never retried


def test_an_experiment_rolled_up_before_states_were_kept_a_month_records_which_days_it_can_correct(mlflow_server):
    client, _, experiment_id = experiment(mlflow_server.url)
    client.set_experiment_tag(experiment_id, THROUGH_TAG, str(H17 + 60))  # written by a rollup that kept 48 hours
    state = RollupState.load(client, experiment_id)
    state.ensure_states_since()
    assert client.get_experiment(experiment_id).tags[STATES_SINCE_TAG] == str(H17 + 60 - 47)
    assert RollupState.load(client, experiment_id).oldest_kept_hour(KEEP_HOUR_STATES) == H17 + 13
    _, _, fresh_id = experiment(mlflow_server.url)
    fresh = RollupState.load(client, fresh_id)
    fresh.ensure_states_since()
    assert fresh.oldest_kept_hour(KEEP_HOUR_STATES) == 0


def test_the_hour_state_of_a_busy_hour_fits_a_run_tag_and_reads_back_identical(versioned_mlflow_server):
    rng = random.Random(7)
    partial = WindowPartial()
    for _ in range(20_000):  # latencies over five decades: ~900 sketch buckets, 18k characters in the plain encoding
        latency = rng.lognormvariate(math.log(1500), 2.0)
        partial.add(CallRecord("chat", None, rng.random() > 0.1, latency, latency * rng.uniform(0.01, 0.5), 9, 9, 0.1))
    assert len(partial.encode()) > 8000
    state = HourState(partial, {"requests": 1e9 + 20_000, "cost_usd": 12_345.678912345})
    client, _, experiment_id = experiment(versioned_mlflow_server.url)
    runs = SummaryRuns(client, experiment_id)
    run = runs.get_or_create(SummaryKey(Kind.MODEL_GROUP, "chat"))
    month = {f"{HOUR_TAG_PREFIX}{H0 + i}": state.encode() for i in range(KEEP_HOUR_STATES)}
    runs.write(run, [], month)  # more tags than one request takes
    loaded = SummaryRuns(client, experiment_id)
    loaded.load()
    (read,) = loaded.runs.values()
    assert read.hour_indexes() == list(range(H0, H0 + KEEP_HOUR_STATES))
    assert read.hour_state(H0 + 5) == state and read.hour_state(H0 + 5).partial.encode() == partial.encode()
