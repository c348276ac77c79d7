"""An hour read across several passes, against a real MLflow server: a pass cut by its deadline saves the slices it
read, the next reads only the others and writes the hour, and the figures equal those of one uncut pass (an uncut
pass over the same hour afterwards adds no point and leaves every hour state as it was). A crash between a save's
run tags and its progress mark, a lost part tag, a slice interrupted by the hard deadline and a trace stored into a
slice already saved leave the figures exact."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from mlflow import MlflowClient

from litellm_mlflow.events import LLMCallEvent
from litellm_mlflow.rollup.rollup import Rollup, RollupReport
from litellm_mlflow.rollup.slice_progress import PART_TAG_PREFIX, PROGRESS_TAG
from litellm_mlflow.rollup.summary_runs import HOUR_TAG_PREFIX, SUMMARY_KEY_TAG
from litellm_mlflow.rollup.trace_reader import window_filter
from litellm_mlflow.sink import MlflowSink, SinkSettings

HOUR = 20_421 * 24 + 23  # long closed (2025-12-01 23:00 UTC), the last hour of its day: the day is written too
NOW_S = (HOUR + 1) * 3600 + 900  # the hour has just closed
SLICES = 60
GROUPS, TEAMS = ("chat", "fast", "coder"), ("search", "ads", None)


def hour_events(prefix: str) -> list[LLMCallEvent]:
    """150 calls: 1-4 in each minute (so some slices take two pages of 2), mixed groups, teams, failures, streams."""
    events = []
    for minute in range(SLICES):
        for n in range(1 + minute % 4):
            i = len(events)
            start = HOUR * 3600 + minute * 60 + 7 * n + 1
            ok = i % 9 != 4
            events.append(
                LLMCallEvent(
                    event_id=f"{prefix}-{i}",
                    model=f"{GROUPS[i % 3]}-dep",
                    model_group=GROUPS[i % 3],
                    start_time=start,
                    end_time=start + 0.05 * (1 + i % 37) ** 1.5,
                    status="success" if ok else "failure",
                    prompt_tokens=10 + i if ok else None,
                    completion_tokens=i % 13 if ok else None,
                    cost_usd=0.001 * (i % 5) if ok and i % 3 != 1 else None,
                    team_alias=TEAMS[i % 3],
                    stream=i % 4 == 0,
                    completion_start_time=start + 0.03 * (1 + i % 11) if i % 4 == 0 else None,
                )
            )
    return events


class Clock:
    """The rollup's monotonic clock, moved by the test (no sleeps): a deadline passes when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class WatchedClient:
    """The real client, with every trace search counted (first pages by filter) and a hook before each."""

    def __init__(self, client: MlflowClient, before_search: Callable[[dict[str, Any]], None] | None = None):
        self._client = client
        self._before_search = before_search
        self._lock = threading.Lock()
        self.first_pages: Counter[str] = Counter()
        self.searches = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def search_traces(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.searches += 1
            if kwargs.get("filter_string") and not kwargs.get("page_token"):
                self.first_pages[kwargs["filter_string"]] += 1
            if self._before_search is not None:
                self._before_search(kwargs)
        return self._client.search_traces(*args, **kwargs)


def slice_filter(index: int) -> str:
    start = HOUR * 3_600_000 + index * 60_000
    return window_filter(start, start + 60_000)


def stored(url: str, events: list[LLMCallEvent], experiment: str | None = None) -> tuple[MlflowClient, str, str]:
    experiment = experiment or f"resumable-{uuid.uuid4().hex[:8]}"
    assert not MlflowSink(SinkSettings(url, experiment)).write(events).failed
    client = MlflowClient(url)
    return client, experiment, client.get_experiment_by_name(experiment).experiment_id


def rollup(client: Any, experiment_id: str, clock: Clock | None = None, **kwargs: Any) -> Rollup:
    settings = {"page_size": 2, **kwargs}  # pages of 2: an hour of 150 is read in slices
    return Rollup(client, experiment_id, grace_s=900, clock_margin_s=0, clock=clock or Clock(), **settings)


def cut_pass(client: MlflowClient, experiment_id: str, after_slices: int) -> tuple[RollupReport, WatchedClient]:
    """A pass whose deadline passes once `after_slices` slices have started (those in flight still finish)."""
    clock = Clock()

    def before_search(kwargs: dict[str, Any]) -> None:
        started = sum(1 for f in watched.first_pages if f != window_filter(HOUR * 3_600_000, (HOUR + 1) * 3_600_000))
        if started >= after_slices:
            clock.now = 100.0

    watched = WatchedClient(client, before_search)
    return rollup(watched, experiment_id, clock).run(now_s=NOW_S, deadline=10.0), watched


def mark(client: MlflowClient, experiment_id: str) -> dict[str, Any]:
    return json.loads(client.get_experiment(experiment_id).tags.get(PROGRESS_TAG) or "{}")


def saved_slices(client: MlflowClient, experiment_id: str) -> set[int]:
    entry = mark(client, experiment_id).get(str(HOUR), {"p": {}})
    return {index for _, _, slices in entry["p"].values() for index in slices}


def summary_runs(client: MlflowClient, experiment_id: str) -> list[Any]:
    return client.search_runs([experiment_id], filter_string=f"tags.`{SUMMARY_KEY_TAG}` LIKE '%'")


def part_tags(client: MlflowClient, experiment_id: str) -> dict[str, list[str]]:
    return {
        run.info.run_name: sorted(key for key in run.data.tags if key.startswith(PART_TAG_PREFIX))
        for run in summary_runs(client, experiment_id)
    }


def snapshot(client: MlflowClient, experiment_id: str) -> dict[str, tuple[str, dict[str, list[tuple]]]]:
    """Per summary run: its hour state and every metric point."""
    result = {}
    for run in summary_runs(client, experiment_id):
        history = {
            key: sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(run.info.run_id, key))
            for key in run.data.metrics
        }
        result[run.info.run_name] = (run.data.tags.get(f"{HOUR_TAG_PREFIX}{HOUR}"), history)
    return result


def assert_equal_to_an_uncut_pass(client: MlflowClient, experiment_id: str, requests: int) -> None:
    """The hour's figures count every stored trace once and equal what one uncut read of the hour gives: that read,
    written over them, adds no metric point (MLflow ignores identical ones) and leaves every hour state unchanged."""
    before = snapshot(client, experiment_id)
    groups = [name for name in before if name.startswith("model group: ")]
    assert sum(before[name][1]["hour/requests"][-1][2] for name in groups) == requests
    assert all(not tags for tags in part_tags(client, experiment_id).values()), "saved slices are cleaned up"
    assert str(HOUR) not in mark(client, experiment_id)
    client.set_experiment_tag(experiment_id, "litellm_mlflow.rollup.through_hour", str(HOUR - 1))
    uncut = Rollup(client, experiment_id, grace_s=900, clock_margin_s=0).run(now_s=NOW_S)  # one page of 500
    assert uncut.hours_written == [HOUR] and uncut.traces_read == requests and uncut.slices_reused == 0
    assert snapshot(client, experiment_id) == before


def test_a_pass_cut_by_its_deadline_and_the_next_pass_write_the_hour_of_an_uncut_pass(versioned_mlflow_server):
    events = hour_events(f"cut-{uuid.uuid4().hex[:6]}")
    client, _, experiment_id = stored(versioned_mlflow_server.url, events)

    first, watched_first = cut_pass(client, experiment_id, after_slices=6)
    assert first.hours_written == [] and first.unfinished_hour == HOUR
    assert 6 <= first.slices_read < SLICES and first.slices_saved == first.slices_read
    assert first.unfinished_slices_left == SLICES - first.slices_saved
    assert len(saved_slices(client, experiment_id)) == first.slices_saved
    assert any(part_tags(client, experiment_id).values())  # the partial figures are on the summary runs

    watched_second = WatchedClient(client)
    second = rollup(watched_second, experiment_id).run(now_s=NOW_S)
    assert second.hours_written == [HOUR] and second.unfinished_hour is None
    assert second.slices_reused == first.slices_saved and second.slices_read == SLICES - first.slices_saved
    assert first.traces_read + second.traces_read == len(events)
    reads = watched_first.first_pages + watched_second.first_pages
    assert all(reads[slice_filter(i)] == 1 for i in range(SLICES)), "every slice read once"
    assert_equal_to_an_uncut_pass(client, experiment_id, len(events))


def test_a_trace_stored_into_a_saved_slice_before_the_hour_is_written_is_counted_by_the_late_path(mlflow_server):
    prefix = f"late-{uuid.uuid4().hex[:6]}"
    events = hour_events(prefix)
    client, experiment, experiment_id = stored(mlflow_server.url, events)
    assert cut_pass(client, experiment_id, after_slices=4)[0].hours_written == []
    saved = saved_slices(client, experiment_id)
    index = min(saved)
    late = LLMCallEvent(
        event_id=f"{prefix}-late", model="chat-dep", model_group="chat", start_time=HOUR * 3600 + index * 60 + 59,
        end_time=HOUR * 3600 + index * 60 + 61, prompt_tokens=5, completion_tokens=5, cost_usd=0.01,
    )  # fmt: skip
    stored(mlflow_server.url, [late], experiment)
    assert f"litellm_mlflow.late.{HOUR}" in client.get_experiment(experiment_id).tags  # the consumer marked the hour

    finished = rollup(client, experiment_id).run(now_s=NOW_S)
    unsaved_calls = [e for e in events if int(e.start_time - HOUR * 3600) // 60 not in saved]
    assert finished.hours_written == [HOUR] and finished.traces_read == len(unsaved_calls)  # the late one not read
    rechecked = rollup(client, experiment_id).run(now_s=NOW_S + 60)
    assert rechecked.hours_rechecked == [HOUR] and "model group: chat" in rechecked.runs_rebuilt
    assert rechecked.traces_read == len(events) + 1
    assert_equal_to_an_uncut_pass(client, experiment_id, len(events) + 1)


def test_a_crash_between_a_save_and_its_mark_and_a_lost_part_tag_change_no_figure(mlflow_server):
    events = hour_events(f"crash-{uuid.uuid4().hex[:6]}")
    client, _, experiment_id = stored(mlflow_server.url, events)

    class Crash(RuntimeError):
        pass

    class CrashingClient(WatchedClient):
        def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
            if key == PROGRESS_TAG:
                raise Crash("the pass died after the part's run tags, before the mark")
            self._client.set_experiment_tag(experiment_id, key, value)

    with pytest.raises(Crash):
        rollup(CrashingClient(client), experiment_id, save_every_s=0.0).run(now_s=NOW_S)  # saves after a slice
    assert any(part_tags(client, experiment_id).values()) and not saved_slices(client, experiment_id)

    cut, _ = cut_pass(client, experiment_id, after_slices=8)  # deletes the unnamed tags, saves parts of its own
    assert cut.hours_written == [] and cut.slices_reused == 0
    parts = mark(client, experiment_id)[str(HOUR)]["p"]
    tags = part_tags(client, experiment_id)
    assert sorted(t for names in tags.values() for t in names) == sorted(
        f"{PART_TAG_PREFIX}{HOUR}.{token}" for token, (_, runs, _) in parts.items() for _ in range(runs)
    ), "only the parts the mark names are left"
    lost_token, (_, _, lost_slices) = sorted(parts.items(), key=lambda item: item[1][2])[0]
    holder = next(
        run for run in summary_runs(client, experiment_id) if f"{PART_TAG_PREFIX}{HOUR}.{lost_token}" in run.data.tags
    )
    client.delete_tag(holder.info.run_id, f"{PART_TAG_PREFIX}{HOUR}.{lost_token}")  # e.g. a run rebuilt without it

    finished = rollup(client, experiment_id).run(now_s=NOW_S)
    assert finished.hours_written == [HOUR]
    assert finished.slices_reused == cut.slices_saved - len(lost_slices)
    assert finished.slices_read == SLICES - finished.slices_reused
    assert_equal_to_an_uncut_pass(client, experiment_id, len(events))


def test_a_slice_interrupted_by_the_hard_deadline_is_not_saved_and_is_read_again(mlflow_server):
    events = hour_events(f"hard-{uuid.uuid4().hex[:6]}")
    client, _, experiment_id = stored(mlflow_server.url, events)
    clock = Clock()
    interrupted: list[str] = []
    # Slices of 4 calls (4 pages of 1) from the 8th on: with 4 read at once, at least 4 slices have been read whole
    # when one of these starts, whatever order the workers finish in (the first four alone can all be in flight).
    four_calls = {slice_filter(i) for i in range(4, SLICES) if i % 4 == 3}

    def before_search(kwargs: dict[str, Any]) -> None:
        if kwargs.get("page_token") and kwargs["filter_string"] in four_calls and not interrupted:
            interrupted.append(kwargs["filter_string"])  # its second page is being read: the third is never asked
            clock.now = 100.0

    watched = WatchedClient(client, before_search)
    first = rollup(watched, experiment_id, clock, page_size=1).run(now_s=NOW_S, deadline=10.0, give_up_at=50.0)
    assert first.hours_written == [] and first.slices_abandoned >= 1
    assert first.slices_saved == first.slices_read and first.slices_read > 0
    interrupted_index = next(i for i in range(SLICES) if slice_filter(i) == interrupted[0])
    assert interrupted_index not in saved_slices(client, experiment_id)

    again = WatchedClient(client)
    second = rollup(again, experiment_id).run(now_s=NOW_S)
    assert second.hours_written == [HOUR] and second.slices_reused == first.slices_saved
    assert again.first_pages[interrupted[0]] == 1  # its pages are read again, whole
    assert first.traces_read + second.traces_read == len(events)
    assert_equal_to_an_uncut_pass(client, experiment_id, len(events))
