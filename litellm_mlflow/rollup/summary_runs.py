"""The summary runs: one MLflow run per model group and one per team, found by tag, created when missing.

Each run is marked FINISHED as soon as it exists (metrics can still be logged to a finished run) and has one
output, a shared LoggedModel named `litellm-usage-summaries`: MLflow 3's GenAI experiment page lists runs without
model outputs under "Evaluation runs" and runs with one under "Training runs" (the classic runs table with charts),
which is where usage summaries belong. Concurrent creators converge on the oldest run; a creator that lost deletes
its own run before writing anything to it.

State kept on the run, as tags (overwritten, so re-writing is idempotent): `litellm_mlflow.hour.<index>` holds an
hour's partial figures (sketches packed, packed_partial.py: ~1.8k characters for a busy hour) and the running totals
through it, kept for 30 days (rollup.py KEEP_HOUR_STATES: a day's figures merge its 24 hours, so a late trace of any
day in that time is corrected from them; the next hour's totals start from the previous hour's).

MLflow never overwrites a metric point: the value is part of a point's identity, so re-logging (key, step,
timestamp) with a new value adds a second point at that step (checked on 3.0.1, 3.4.0 and 3.17). A window whose
figures change after they were written (a late event) is therefore corrected by `rebuild`: a new run gets the full
corrected series and the old one is deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mlflow.entities import Metric, RunTag
from mlflow.exceptions import MlflowException

from litellm_mlflow.rollup.figures import WindowPartial
from litellm_mlflow.rollup.packed_partial import pack_partial, unpack_partial

logger = logging.getLogger(__name__)

SUMMARY_TAG = "litellm_mlflow.summary"
SUMMARY_KEY_TAG = "litellm_mlflow.summary_key"
BUILDING_TAG = "litellm_mlflow.building"
HOUR_TAG_PREFIX = "litellm_mlflow.hour."
OUTPUT_MODEL_NAME = "litellm-usage-summaries"
NOTE_TAG = "mlflow.note.content"
# Servers before 3.10 fail a log_batch that repeats more than 100 stored points; summaries stay under it everywhere.
POINTS_PER_REQUEST = 100
TAGS_PER_REQUEST = 100  # MLflow's log_batch limit (a rebuilt run carries a month of hour states)


class Kind(StrEnum):
    MODEL_GROUP = "model_group"
    TEAM = "team"


@dataclass(frozen=True, order=True)
class SummaryKey:
    kind: Kind
    name: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(f"{self.kind}\x00{self.name}".encode()).hexdigest()[:32]

    @property
    def run_name(self) -> str:
        label = "model group" if self.kind is Kind.MODEL_GROUP else "team"
        return f"{label}: {self.name}"[:250]


@dataclass
class HourState:
    """What a run keeps of one hour: its partial figures and the running totals through it."""

    partial: WindowPartial
    totals: dict[str, float]

    def encode(self) -> str:
        return json.dumps({"w": pack_partial(self.partial), "T": self.totals}, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> HourState:
        data = json.loads(text)
        return cls(unpack_partial(data["w"]), {k: float(v) for k, v in data["T"].items()})


@dataclass
class SummaryRun:
    key: SummaryKey
    run_id: str
    tags: dict[str, str] = field(default_factory=dict)

    def hour_state(self, hour_index: int) -> HourState | None:
        text = self.tags.get(f"{HOUR_TAG_PREFIX}{hour_index}")
        return HourState.decode(text) if text else None

    def hour_indexes(self) -> list[int]:
        return sorted(int(k[len(HOUR_TAG_PREFIX) :]) for k in self.tags if k.startswith(HOUR_TAG_PREFIX))


def description(key: SummaryKey) -> str:
    what = "model group" if key.kind is Kind.MODEL_GROUP else "team"
    return (
        f"Usage of the {what} `{key.name}`, rolled up by litellm-mlflow from this experiment's traces once each "
        "window has closed. `hour/*`: one point per hour (step = hours since 1970-01-01 UTC, timestamp = the hour's "
        "start); `day/*`: one point per UTC day (step = days since 1970-01-01); `total/*`: running totals through "
        "each hour. Percentiles are within 1%; cost_usd counts priced calls, unpriced_requests the others."
    )


@dataclass
class SummaryRuns:
    """Find-or-create and writes of the summary runs of one experiment."""

    client: Any
    experiment_id: str
    runs: dict[str, SummaryRun] = field(default_factory=dict)
    requests_sent: int = 0
    _output_model_id: str | None = None

    def load(self) -> None:
        """Every summary run of the experiment (the oldest per key wins; runs being rebuilt are skipped)."""
        found: dict[str, tuple[int, Any]] = {}
        for run in self._search(f"tags.`{SUMMARY_KEY_TAG}` LIKE '%'"):
            tags = run.data.tags
            if tags.get(BUILDING_TAG):
                continue
            rank = (run.info.start_time or 0, run.info.run_id)
            digest = tags[SUMMARY_KEY_TAG]
            if digest not in found or rank < found[digest][0]:
                found[digest] = (rank, run)
        self.runs = {
            digest: SummaryRun(SummaryKey(Kind(run.data.tags[SUMMARY_TAG]), _name(run)), run.info.run_id, run.data.tags)
            for digest, (_, run) in found.items()
        }

    def get_or_create(self, key: SummaryKey) -> SummaryRun:
        if key.digest not in self.runs:
            self.runs[key.digest] = self._create(key)
        return self.runs[key.digest]

    def write(self, run: SummaryRun, metrics: list[Metric], tags: Mapping[str, str] = {}) -> None:
        """Points and tags (at most POINTS_PER_REQUEST and TAGS_PER_REQUEST a request); tags go with the last
        requests, so a run's state never runs ahead of its points."""
        run_tags = [RunTag(k, v) for k, v in tags.items()]
        chunks = [metrics[i : i + POINTS_PER_REQUEST] for i in range(0, len(metrics), POINTS_PER_REQUEST)] or [[]]
        tag_chunks = [run_tags[i : i + TAGS_PER_REQUEST] for i in range(0, len(run_tags), TAGS_PER_REQUEST)]
        chunks += [[] for _ in range(len(tag_chunks) - len(chunks))]
        tag_chunks = [[] for _ in range(len(chunks) - len(tag_chunks))] + tag_chunks
        for chunk, tag_chunk in zip(chunks, tag_chunks, strict=True):
            self.requests_sent += 1
            self.client.log_batch(run.run_id, metrics=chunk, tags=tag_chunk, synchronous=True)
        run.tags.update(tags)

    def delete_tags(self, run: SummaryRun, keys: Iterable[str]) -> None:
        for key in keys:
            if key in run.tags:
                self.requests_sent += 1
                self.client.delete_tag(run.run_id, key)
                run.tags.pop(key, None)

    def history(self, run: SummaryRun) -> dict[str, list[Metric]]:
        """Every metric point of the run, by key."""
        keys = self.client.get_run(run.run_id).data.metrics.keys()
        return {key: list(self.client.get_metric_history(run.run_id, key)) for key in keys}

    def rebuild(self, run: SummaryRun, points: dict[str, dict[int, Metric]], tags: dict[str, str]) -> SummaryRun:
        """Replace `run` with a new run holding exactly `points` (key -> step -> point) and these state tags."""
        for stale in self._search(f"tags.`{SUMMARY_KEY_TAG}` = '{run.key.digest}' AND tags.`{BUILDING_TAG}` = '1'"):
            self.client.delete_run(stale.info.run_id)
        fresh = self._new_run(run.key, building=True)
        series = sorted((point for by_step in points.values() for point in by_step.values()), key=_point_order)
        self.write(fresh, series, tags)
        self.client.delete_run(run.run_id)
        self.client.delete_tag(fresh.run_id, BUILDING_TAG)
        fresh.tags.pop(BUILDING_TAG, None)
        self.runs[run.key.digest] = fresh
        logger.info("summary run %s rebuilt as %s (%d points)", run.key.run_name, fresh.run_id, len(series))
        return fresh

    # ------------------------------------------------------------------------------------------ internals

    def _create(self, key: SummaryKey) -> SummaryRun:
        run = self._new_run(key, building=False)
        winner = self._oldest(key.digest)
        if winner is not None and winner.info.run_id != run.run_id:
            self.client.delete_run(run.run_id)
            return SummaryRun(key, winner.info.run_id, winner.data.tags)
        return run

    def _new_run(self, key: SummaryKey, building: bool) -> SummaryRun:
        tags = {
            SUMMARY_TAG: str(key.kind),
            SUMMARY_KEY_TAG: key.digest,
            key.kind.value: key.name[:5000],
            NOTE_TAG: description(key),
            "source": "litellm-mlflow",
        }
        if building:
            tags[BUILDING_TAG] = "1"
        created = self.client.create_run(self.experiment_id, run_name=key.run_name, tags=tags)
        run_id = created.info.run_id
        self.client.set_terminated(run_id, "FINISHED")
        self.link_output_model(run_id)
        return SummaryRun(key, run_id, dict(created.data.tags))

    def link_output_model(self, run_id: str) -> None:
        """Give the run the shared output model (the UI then lists it with the training runs)."""
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus

        try:
            if self._output_model_id is None:
                models = self.client.search_logged_models(
                    [self.experiment_id], filter_string=f"name = '{OUTPUT_MODEL_NAME}'", max_results=10
                )
                if models:
                    self._output_model_id = sorted(models, key=lambda m: m.creation_timestamp)[0].model_id
                else:
                    model = self.client.create_logged_model(
                        self.experiment_id, name=OUTPUT_MODEL_NAME, tags={"source": "litellm-mlflow"}
                    )
                    self.client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
                    self._output_model_id = model.model_id
            self.client.log_outputs(run_id, [LoggedModelOutput(self._output_model_id, 0)])
        except MlflowException as exc:  # the runs still work; they are only listed under "Evaluation runs"
            logger.warning("could not link the summary run to its output model: %s", exc)

    def _oldest(self, digest: str) -> Any:
        runs = [
            run for run in self._search(f"tags.`{SUMMARY_KEY_TAG}` = '{digest}'") if not run.data.tags.get(BUILDING_TAG)
        ]
        return min(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id)) if runs else None

    def _search(self, filter_string: str) -> list[Any]:
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], filter_string=filter_string, max_results=1000, page_token=token
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs


def _name(run: Any) -> str:
    tags = run.data.tags
    return tags.get(tags[SUMMARY_TAG]) or run.info.run_name or tags[SUMMARY_KEY_TAG]


def _point_order(point: Metric) -> tuple[str, int]:
    return point.key, point.step
