"""A resumable read of one hour: fixed slices read a few at once, saved as they pile up, merged when all are read.

Why slices of one minute: a pass stops *starting* slices at its deadline and lets the ones in flight finish, so the
slices in flight must fit in the time the Lambda keeps after the deadline (the handler's safety margin, 240 s). At
100 calls/s a minute holds 6,000 traces; with the consumer writing, the rollup read only 150-270 traces/s in all
(bench_rollup_sustained), so 4 one-minute slices in flight take at most ~160 s, while 2-minute slices could take
over 300 s. A quiet hour is not sliced: one search of the whole hour comes first, and if it returns every trace in
one page (500), that is the read. A hard deadline (`give_up_at`) is checked before every page: a slice it
interrupts is dropped, never saved, and read again by the next pass.

Slices read are saved (slice_progress.py) every `save_every_s` and when the pass stops early, so a pass that cannot
finish the hour leaves the next one only the slices not yet saved. Saving costs a tag write per summary run with
calls in those slices plus one experiment tag write; an hour read whole within the pass saves nothing at all.
Merging partial figures is exact (sums and sketch bucket counts), so the figures do not depend on the cut points.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from litellm_mlflow.rollup.figures import CallRecord, WindowPartial
from litellm_mlflow.rollup.slice_progress import SliceProgress
from litellm_mlflow.rollup.summary_runs import Kind, SummaryKey
from litellm_mlflow.rollup.trace_reader import (
    PAGE_SIZE,
    ReadAbandoned,
    call_record,
    distinct_calls,
    read_window,
    window_filter,
)
from litellm_mlflow.rollup.windows import Window

logger = logging.getLogger(__name__)

SLICE_S = 60
SAVE_EVERY_S = 60.0
# Slices read at once: the server answers pages faster than one client thread asks for them (and remote servers add
# a round trip per page).
READ_WORKERS = 4

Partials = dict[SummaryKey, WindowPartial]


def aggregate(calls: Iterable[CallRecord], teams: bool = True) -> Partials:
    partials: dict[SummaryKey, WindowPartial] = defaultdict(WindowPartial)
    for call in calls:
        partials[SummaryKey(Kind.MODEL_GROUP, call.model_group)].add(call)
        if teams and call.team:
            partials[SummaryKey(Kind.TEAM, call.team)].add(call)
    return dict(partials)


def merge_into(target: Partials, partials: Partials) -> None:
    for key, partial in partials.items():
        target.setdefault(key, WindowPartial()).merge(partial)


def requests_of(partials: Partials) -> int:
    return sum(partial.requests for key, partial in partials.items() if key.kind is Kind.MODEL_GROUP)


@dataclass
class SliceCounts:
    """How far the reads of a pass got (the Lambda logs it with the report)."""

    read: int = 0  # slices read by this pass
    saved: int = 0  # of those, saved for a later pass
    reused: int = 0  # slices an earlier pass had saved, merged instead of read
    abandoned: int = 0  # interrupted by the hard deadline, to be read again
    traces_read: int = 0


@dataclass
class HourRead:
    partials: Partials
    started_ms: int  # when the earliest read merged into it started (a late mark after it reopens the hour)


@dataclass
class HourReader:
    client: Any
    experiment_id: str
    progress: SliceProgress
    teams: bool = True
    workers: int = READ_WORKERS
    slice_s: int = SLICE_S
    save_every_s: float = SAVE_EVERY_S
    page_size: int = PAGE_SIZE
    clock: Callable[[], float] = time.monotonic
    counts: SliceCounts = field(default_factory=SliceCounts)

    def read(self, hour: Window, deadline: float | None = None, give_up_at: float | None = None) -> HourRead | None:
        """The hour's partial figures, or None if the deadline came first (what was read is saved)."""
        saved, saved_before = self.progress.saved(hour.index, self.slice_s), self.counts.saved
        self.counts.reused += len(saved.slices)
        todo = [i for i in range(3600 // self.slice_s) if i not in saved.slices]
        if not saved.slices:
            whole = self._read_in_one_page(hour, give_up_at)
            if whole is not None:
                return whole
        fresh: dict[int, tuple[Partials, int]] = {}  # slice -> (partials, read start ms)
        unsaved: list[int] = []
        failure: BaseException | None = None
        last_save = self.clock()
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="rollup-read") as pool:
            in_flight: dict[Future, int] = {}
            queue = iter(todo)
            while True:
                while failure is None and len(in_flight) < self.workers and not self._past(deadline):
                    index = next(queue, None)
                    if index is None:
                        break
                    in_flight[pool.submit(self._read_slice, hour, index, give_up_at)] = index
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    index = in_flight.pop(future)
                    try:
                        fresh[index] = future.result()
                    except ReadAbandoned:
                        self.counts.abandoned += 1
                        continue
                    except Exception as exc:  # the slices in flight finish and what was read is saved first
                        failure = failure or exc
                        continue
                    unsaved.append(index)
                    self.counts.read += 1
                    self.counts.traces_read += requests_of(fresh[index][0])
                if unsaved and len(fresh) < len(todo) and self.clock() - last_save >= self.save_every_s:
                    self._save(hour, fresh, unsaved)
                    last_save = self.clock()
        if len(fresh) == len(todo) and failure is None:
            merged: Partials = {}
            merge_into(merged, saved.partials)
            for partials, _ in fresh.values():
                merge_into(merged, partials)
            starts = [started for _, started in fresh.values()] + [saved.started_ms or int(time.time() * 1000)]
            return HourRead(merged, min(starts))
        if failure is not None:
            if unsaved:
                try:
                    self._save(hour, fresh, unsaved)
                except Exception as exc:  # the server failing the reads may refuse the save too
                    logger.warning("hour %d: slices read before a failure not saved: %s", hour.index, exc)
            raise failure
        if unsaved:
            self._save(hour, fresh, unsaved)
        left = 3600 // self.slice_s - len(saved.slices) - (self.counts.saved - saved_before)
        logger.info("hour %d unfinished: %d slices left for the next pass", hour.index, left)
        return None

    def _read_in_one_page(self, hour: Window, give_up_at: float | None) -> HourRead | None:
        """The whole hour if it fits in one page (most hours below 100 calls/s do), else None."""
        if self._past(give_up_at):
            return None
        started_ms = int(time.time() * 1000)
        page = self.client.search_traces(
            locations=[self.experiment_id], filter_string=window_filter(hour.start_ms, hour.end_ms),
            max_results=self.page_size, include_spans=False,
        )  # fmt: skip
        if page.token:
            return None
        infos = distinct_calls((trace.info for trace in page), set())  # one trace per call, as read_window counts
        partials = aggregate((r for r in map(call_record, infos) if r), teams=self.teams)
        self.counts.read += 3600 // self.slice_s
        self.counts.traces_read += requests_of(partials)
        return HourRead(partials, started_ms)

    def _read_slice(self, hour: Window, index: int, give_up_at: float | None) -> tuple[Partials, int]:
        started_ms = int(time.time() * 1000)
        start = hour.start_ms + index * self.slice_s * 1000
        calls = read_window(
            self.client, self.experiment_id, start, start + self.slice_s * 1000, self.page_size,
            give_up=lambda: self._past(give_up_at),
        )  # fmt: skip
        return aggregate(calls, teams=self.teams), started_ms

    def _save(self, hour: Window, fresh: dict[int, tuple[Partials, int]], unsaved: list[int]) -> None:
        merged: Partials = {}
        for index in unsaved:
            merge_into(merged, fresh[index][0])
        started_ms = min(fresh[index][1] for index in unsaved)
        if self.progress.save(hour.index, self.slice_s, unsaved, merged, started_ms):
            self.counts.saved += len(unsaved)
            logger.info(
                "hour %d: %d slices saved (%d read this pass, %d saved before)",
                hour.index, len(unsaved), self.counts.read, self.counts.reused,
            )  # fmt: skip
        unsaved.clear()

    def _past(self, deadline: float | None) -> bool:
        return deadline is not None and self.clock() >= deadline
