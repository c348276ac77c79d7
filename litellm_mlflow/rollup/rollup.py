"""The rollup: closed hours (and days) of stored traces -> the summary runs' points. Idempotent by construction.

Every figure is a function of the traces MLflow stored for a window (trace ids come from event ids, so a
redelivered event or two consumers writing the same event leave one trace), and every point's identity is
(key, step = window index, timestamp = window start, value). Running the rollup again, or twice at once, re-sends
identical points, which MLflow ignores. A late trace (stored after its hour closed) is marked by the consumer; the
next pass re-reads that hour and, only if a figure changed, rebuilds the affected runs with the corrected hour, its
day and the totals after it (MLflow cannot overwrite a point in place). A run is rebuilt once a pass, however many
reopened hours changed it (a redrive reopens many), and the hours are marked checked only after the rebuilds.

One pass per invocation: per-deployment runs the per-call writer left RUNNING are finished first (leftover_runs),
then reopened hours, then every hour closed since the last pass, oldest first, until the deadline. An hour is read
in one-minute slices (hour_reader.py); a pass that reaches its deadline inside an hour saves the slices it read
(slice_progress.py) and the next pass reads only the others, so an hour larger than one pass can read still gets
written. It is meant to run as one instance at a time (the Lambda has a reserved concurrency of 1); a second
instance at once would only repeat identical writes (or make the other's saved slices be read again).

Late traces of any age the queues allow are corrected from hour states, never by reading a day again. A
correction needs the hour's new figures (one hour re-read, resumable like any other) and the figures of the other
23 hours of its day (the day's point merges its hours' sketches). The queue and its dead-letter queue keep an event
14 days each, so a redrive after an MLflow outage brings traces up to ~28 days late. Two ways were weighed
(bench/bench_hour_states.py, BENCHMARKS.md):
- re-read the day: at 100 calls/s that is 8.6M traces, 9-16 hours of reads at the 150-270 traces/s measured while
  the consumer writes. Even resumable and once for all runs, every late day would hold the rollup back that long,
  and a redrive touches many days: it would never catch up;
- keep every hour state for 30 days (KEEP_HOUR_STATES, 720 per run, sketches packed to ~1.8k characters for a busy
  hour): no read beyond the hour, exact figures, at the cost of the tags loaded by each pass (measured).
So states are kept 30 days. A late trace in a day with any state gone (older than that, or older than what the
rollup kept before it kept 30 days: state.py `states_since`) is not corrected: its hour is logged and listed in
the report (late_hours_too_old) and the mark is checked, so it is never retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import Metric

from litellm_mlflow.rollup.figures import TOTAL_FIGURES, WindowPartial, running_totals
from litellm_mlflow.rollup.hour_reader import (
    READ_WORKERS,
    SAVE_EVERY_S,
    SLICE_S,
    HourRead,
    HourReader,
)
from litellm_mlflow.rollup.leftover_runs import finish_leftover_runs
from litellm_mlflow.rollup.slice_progress import PART_TAG_PREFIX, SliceProgress
from litellm_mlflow.rollup.state import CLOCK_MARGIN_S, RollupState, grace_seconds
from litellm_mlflow.rollup.summary_runs import (
    HOUR_TAG_PREFIX,
    HourState,
    Kind,
    SummaryRun,
    SummaryRuns,
)
from litellm_mlflow.rollup.trace_reader import PAGE_SIZE
from litellm_mlflow.rollup.windows import Period, Window, last_closed_hour

logger = logging.getLogger(__name__)

DEFAULT_BACKFILL_HOURS = 7 * 24
HOUR_PREFIX, DAY_PREFIX, TOTAL_PREFIX = "hour/", "day/", "total/"
# Hour states are kept this long after their hour: the day is written from them, and a late event (up to 28 days late
# after a dead-letter redrive, plus its day) is corrected from them without re-reading that day's traces.
KEEP_HOUR_STATES = 30 * 24

Points = dict[str, dict[int, Metric]]  # metric key -> step -> point


@dataclass
class RollupReport:
    hours_written: list[int] = field(default_factory=list)
    hours_rechecked: list[int] = field(default_factory=list)
    runs_rebuilt: list[str] = field(default_factory=list)
    leftover_runs_finished: list[str] = field(default_factory=list)
    traces_read: int = 0
    requests_sent: int = 0
    read_seconds: float = 0.0
    write_seconds: float = 0.0
    # How far the hour reads got: one-minute slices read by this pass, saved for the next one, taken from an
    # earlier pass's save, given up at the hard deadline; the hour left unfinished and its slices still to read.
    slices_read: int = 0
    slices_saved: int = 0
    slices_reused: int = 0
    slices_abandoned: int = 0
    unfinished_hour: int | None = None
    unfinished_slices_left: int = 0
    # Hours with late traces too old to correct (their day's hour states are gone): logged, not retried.
    late_hours_too_old: list[int] = field(default_factory=list)


def window_metrics(prefix: str, window: Window, partial: WindowPartial) -> list[Metric]:
    return [Metric(prefix + name, value, window.start_ms, window.step) for name, value in partial.figures().items()]


def total_metrics(window: Window, totals: dict[str, float]) -> list[Metric]:
    return [Metric(TOTAL_PREFIX + name, totals.get(name, 0.0), window.start_ms, window.step) for name in TOTAL_FIGURES]


@dataclass
class _Pass:
    """What one pass works with: the runs, the experiment's state, the hour reader, the report and the deadlines."""

    runs: SummaryRuns
    state: RollupState
    reader: HourReader
    report: RollupReport
    deadline: float | None
    give_up_at: float | None


@dataclass
class Rollup:
    client: Any
    experiment_id: str
    grace_s: float = field(default_factory=grace_seconds)
    backfill_hours: int = DEFAULT_BACKFILL_HOURS
    team_summaries: bool = True
    clock_margin_s: float = CLOCK_MARGIN_S
    read_workers: int = READ_WORKERS
    slice_s: int = SLICE_S
    save_every_s: float = SAVE_EVERY_S
    page_size: int = PAGE_SIZE
    clock: Callable[[], float] = time.monotonic  # what the deadlines are compared with

    def run(
        self, now_s: float | None = None, deadline: float | None = None, give_up_at: float | None = None
    ) -> RollupReport:
        """One pass. `deadline` (on `clock`, time.monotonic() by default): stop starting hours and slices, finish the
        slices in flight and save them (the next pass goes on). `give_up_at`: stop inside a slice read too (the
        interrupted slice is dropped, the others saved); it must leave time for the save."""
        if 3600 % self.slice_s:
            raise ValueError(f"slice_s must divide an hour, not {self.slice_s}")
        now_s = time.time() if now_s is None else now_s
        report = RollupReport()
        runs = SummaryRuns(self.client, self.experiment_id)
        runs.load()
        report.leftover_runs_finished = finish_leftover_runs(self.client, self.experiment_id, runs.link_output_model)
        state = RollupState.load(self.client, self.experiment_id)
        state.ensure_states_since()
        progress = SliceProgress.load(self.client, self.experiment_id, runs)
        reader = HourReader(
            self.client, self.experiment_id, progress, teams=self.team_summaries, workers=self.read_workers,
            slice_s=self.slice_s, save_every_s=self.save_every_s, page_size=self.page_size, clock=self.clock,
        )  # fmt: skip
        progress.forget(set(state.reopened(self.clock_margin_s)), state.through_hour)
        try:
            self._pass(_Pass(runs, state, reader, report, deadline, give_up_at), now_s)
        finally:
            counts = reader.counts
            report.slices_read, report.slices_saved = counts.read, counts.saved
            report.slices_reused, report.slices_abandoned = counts.reused, counts.abandoned
            report.requests_sent = runs.requests_sent
        return report

    def _pass(self, p: _Pass, now_s: float) -> None:
        last = last_closed_hour(now_s, self.grace_s)
        rechecked: list[tuple[int, int]] = []  # (hour, when its read started)
        corrected: dict[str, Points] = {}  # run digest -> its points with every correction of this pass
        stopped = False
        for hour in p.state.reopened(self.clock_margin_s):
            if self._too_old(Window(Period.HOUR, hour), p):
                continue
            started_ms = None if self._past(p.deadline) else self._recheck(Window(Period.HOUR, hour), p, corrected)
            if started_ms is None:
                stopped = True
                break
            rechecked.append((hour, started_ms))
        for digest, points in corrected.items():  # one rebuild per run, whatever the number of hours corrected
            run = p.runs.runs[digest]
            tags = {k: v for k, v in run.tags.items() if k.startswith((HOUR_TAG_PREFIX, PART_TAG_PREFIX))}
            p.runs.rebuild(run, points, tags)
            p.report.runs_rebuilt.append(run.key.run_name)
        for hour, started_ms in rechecked:  # only once the runs hold the corrections
            p.state.set_checked(hour, started_ms)
            p.reader.progress.finish(hour)
            p.report.hours_rechecked.append(hour)
        if stopped:
            return
        for hour in range(self._first_hour(p.state, last), last + 1):
            if self._past(p.deadline):
                break
            p.state.set_closing(hour)
            if not self._write_hour(Window(Period.HOUR, hour), p):
                break
            p.state.set_through(hour)
            p.reader.progress.finish(hour)
            p.report.hours_written.append(hour)
        if p.report.hours_written:
            p.state.prune(p.report.hours_written[-1])

    # ------------------------------------------------------------------------------------------ hours

    def _read_hour(self, hour: Window, p: _Pass) -> HourRead | None:
        """The hour's read (resumed from saved slices), or None when the pass stopped inside it."""
        started, traces_before = time.perf_counter(), p.reader.counts.traces_read
        try:
            read = p.reader.read(hour, p.deadline, p.give_up_at)
        finally:
            p.report.traces_read += p.reader.counts.traces_read - traces_before
            p.report.read_seconds += time.perf_counter() - started
        if read is None:
            saved = p.reader.progress.saved(hour.index, self.slice_s).slices
            p.report.unfinished_hour, p.report.unfinished_slices_left = hour.index, 3600 // self.slice_s - len(saved)
        return read

    def _write_hour(self, hour: Window, p: _Pass) -> bool:
        read = self._read_hour(hour, p)
        if read is None:
            return False
        runs, partials, started = p.runs, read.partials, time.perf_counter()
        for key in partials:
            runs.get_or_create(key)
        for run in list(runs.runs.values()):
            if run.key.kind is Kind.TEAM and not self.team_summaries:
                continue
            partial = partials.get(run.key, WindowPartial())
            totals = running_totals(_totals_before(run, hour.index), partial)
            metrics = window_metrics(HOUR_PREFIX, hour, partial) + total_metrics(hour, totals)
            if hour.is_last_hour_of_day:
                day = hour.day()
                metrics += window_metrics(DAY_PREFIX, day, _day_partial(run, day, {hour.index: partial}))
            runs.write(run, metrics, {f"{HOUR_TAG_PREFIX}{hour.index}": HourState(partial, totals).encode()})
            expired = [f"{HOUR_TAG_PREFIX}{h}" for h in run.hour_indexes() if h <= hour.index - KEEP_HOUR_STATES]
            runs.delete_tags(run, expired)
        p.report.write_seconds += time.perf_counter() - started
        return True

    def _past(self, deadline: float | None) -> bool:
        return deadline is not None and self.clock() >= deadline

    def _first_hour(self, state: RollupState, last: int) -> int:
        if state.through_hour is not None:
            return state.through_hour + 1
        earliest = self.client.search_traces(
            locations=[self.experiment_id], max_results=1, order_by=["timestamp_ms ASC"], include_spans=False
        )
        if not earliest:
            return last + 1
        return max(int(earliest[0].info.request_time // 3_600_000), last - self.backfill_hours + 1)

    # ------------------------------------------------------------------------------------------ late traces

    def _too_old(self, hour: Window, p: _Pass) -> bool:
        """Whether the hour's day is older than the hour states kept: then it is reported and marked checked."""
        oldest = p.state.oldest_kept_hour(KEEP_HOUR_STATES)
        if hour.day().hours()[0].index >= oldest:
            return False
        logger.warning("hour %d: late traces not corrected, older than the hour states kept (from hour %d)",
                       hour.index, oldest)  # fmt: skip
        p.state.set_checked(hour.index, int(time.time() * 1000))
        p.report.late_hours_too_old.append(hour.index)
        return True

    def _recheck(self, hour: Window, p: _Pass, corrected: dict[str, Points]) -> int | None:
        """Re-read a reopened hour and correct, in `corrected`, every run whose figures of it changed; returns when
        the read started (None: the pass stopped inside the read)."""
        read = self._read_hour(hour, p)
        if read is None:
            return None
        runs, partials = p.runs, read.partials
        for key in partials:
            runs.get_or_create(key)
        for run in list(runs.runs.values()):
            new = partials.get(run.key, WindowPartial())
            old = run.hour_state(hour.index)
            if old is not None and old.partial.encode() == new.encode():
                continue
            if old is None and _written_figures(runs, run, hour) == (new.figures() if new.requests else {}):
                continue
            if run.key.digest not in corrected:
                corrected[run.key.digest] = {
                    key: {point.step: point for point in sorted(series, key=lambda p: (p.timestamp, p.value))}
                    for key, series in runs.history(run).items()
                }
            _correct(run, hour, new, corrected[run.key.digest])
        return read.started_ms


def _correct(run: SummaryRun, hour: Window, new: WindowPartial, points: Points) -> None:
    """Replace `hour` by `new` in the run's points (that hour, its day if written, every total after it) and in its
    hour states (run.tags); the pass rebuilds the run from them once it has corrected every reopened hour."""
    old_hour = _take_window(points, HOUR_PREFIX, hour.step)
    _put(points, window_metrics(HOUR_PREFIX, hour, new))
    figures = new.figures()
    delta = {name: figures[name] - old_hour.get(name, 0.0) for name in TOTAL_FIGURES}
    # Only the hour and those after it change (their totals move); a month of earlier states is left encoded.
    states = {index: run.hour_state(index) for index in run.hour_indexes() if index >= hour.index}
    if states.get(hour.index) is None and hour.step not in points.get(TOTAL_PREFIX + "requests", {}):
        totals_before = _totals_before(run, hour.index)
        states[hour.index] = HourState(WindowPartial(), {n: totals_before.get(n, 0.0) for n in TOTAL_FIGURES})
    for index, hour_state in states.items():
        if hour_state is None:
            continue
        hour_state.partial = new if index == hour.index else hour_state.partial
        hour_state.totals = {n: round(hour_state.totals.get(n, 0.0) + delta[n], 9) for n in TOTAL_FIGURES}
    for name in TOTAL_FIGURES:  # totals of hours whose state is gone move by the same delta
        for step, point in list(points.get(TOTAL_PREFIX + name, {}).items()):
            if step >= hour.step and states.get(step) is None:
                points[TOTAL_PREFIX + name][step] = Metric(
                    point.key, round(point.value + delta[name], 9), point.timestamp, step
                )
    for index, hour_state in states.items():
        if hour_state is not None:
            _put(points, total_metrics(Window(Period.HOUR, index), hour_state.totals))
    day = hour.day()
    if _take_window(points, DAY_PREFIX, day.step):  # every state of the day is there (_too_old checked)
        known = {i: s.partial for i, s in states.items() if s is not None and day.start_s <= i * 3600 < day.end_s}
        _put(points, window_metrics(DAY_PREFIX, day, _day_partial(run, day, known)))
    run.tags.update({f"{HOUR_TAG_PREFIX}{i}": s.encode() for i, s in states.items() if s is not None})


def _day_partial(run: SummaryRun, day: Window, known: dict[int, WindowPartial]) -> WindowPartial:
    """A day's figures: the merge of its hours (an hour the run has no state for was empty for it)."""
    merged = WindowPartial()
    for hour in day.hours():
        partial = known.get(hour.index)
        if partial is None:
            state = run.hour_state(hour.index)
            partial = state.partial if state else WindowPartial()
        merged.merge(partial)
    return merged


def _written_figures(runs: SummaryRuns, run: SummaryRun, hour: Window) -> dict[str, float]:
    """The hour's figures as the run holds them, when its state tag is gone (or the hour was never written)."""
    history = runs.history(run)
    return {
        key[len(HOUR_PREFIX) :]: point.value
        for key, series in history.items()
        if key.startswith(HOUR_PREFIX)
        for point in series
        if point.step == hour.step
    }


def _totals_before(run: SummaryRun, hour_index: int) -> dict[str, float]:
    """Running totals through the newest hour before `hour_index` the run has a state for (none: a new run)."""
    earlier = [index for index in run.hour_indexes() if index < hour_index]
    state = run.hour_state(earlier[-1]) if earlier else None
    return dict(state.totals) if state else {}


def _take_window(points: Points, prefix: str, step: int) -> dict[str, float]:
    """Remove a window's points (all keys under `prefix` at `step`); returns their values by figure name."""
    taken = {}
    for key, by_step in points.items():
        if key.startswith(prefix) and step in by_step:
            taken[key[len(prefix) :]] = by_step.pop(step).value
    return taken


def _put(points: Points, metrics: list[Metric]) -> None:
    for metric in metrics:
        points.setdefault(metric.key, {})[metric.step] = metric
