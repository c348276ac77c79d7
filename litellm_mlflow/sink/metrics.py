"""Per-model runs (seed 002: one row per model) and their time-series metrics, written with `log_batch`.

Point identity: MLflow stores a metric point once per (key, timestamp, step, value); an identical point sent again
is ignored. So every point is a pure function of the event(s) it describes:
- per call: timestamp = the call's end time (ms); step = a 31-bit hash of the event id. Two calls that end in the
  same millisecond with the same value (error = 0.0 is common) collide about once in 2e9 pairs, and a redelivered
  event produces exactly the points it produced before. Points are ordered by their timestamp (the UI's time axis).
- per batch (requests, error_rate, cache_hit_rate over one model's new calls in the batch): timestamp = the newest
  end time among them; step = a 31-bit hash of the sorted event ids. Only calls whose trace is stored by this
  delivery are counted (a call an earlier delivery stored was counted then), and the rate points travel in the
  model's last request, so calls that fail here are not counted now and are counted once when they come back.
  (A call whose trace was stored but whose metrics failed is not counted in the rates when it comes back; its
  per-call points still land.)

Request size: servers before 3.10 answer a log_batch that repeats more than 100 already-stored points with HTTP
400 "UNIQUE constraint failed" (their duplicate fallback checks 100 keys at a time and inserts after each check), so
a redelivered batch would fail every time. On those servers each request carries at most 100 points; each request
is then idempotent on its own.

Runs: found by the tag `litellm_mlflow.model_key` (a hash of the model name, safe in filters), created when missing.
Concurrent creators elect one run (run_election.py: the run whose creator saw the fewest runs wins, provably the same
for every creator); a loser deletes its own run before any metric goes to it. Found runs are cached for the life of
the Lambda container.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mlflow.entities import Metric, Param, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_METRICS_PER_BATCH
from packaging.version import Version

from litellm_mlflow.events import LLMCallEvent
from litellm_mlflow.sink.run_election import Candidate, RunElection
from litellm_mlflow.sink.transport import short_text

MODEL_KEY_TAG = "litellm_mlflow.model_key"
MODEL_TAG = "model"
RATE_METRICS = ("requests", "error_rate", "cache_hit_rate")
DEADLINE_REASON = "not written: the invocation's time ran out before this call's metrics were sent"
MAX_RUN_NAME = 250
# First release whose log_batch accepts a re-sent request of any size (its duplicate fallback filters cumulatively;
# read in the 3.5-3.10 wheels, measured on 3.0.1, 3.4.0 and 3.10.1).
IDEMPOTENT_LOG_BATCH_MIN_VERSION = Version("3.10.0")
OLD_SERVER_POINTS_PER_REQUEST = 100
STEP_SPACE = 2**31


def points_per_request(version: Version | None) -> int:
    """How many metric points one log_batch may carry so that re-sending it is accepted by this server."""
    if version is not None and version >= IDEMPOTENT_LOG_BATCH_MIN_VERSION:
        return MAX_METRICS_PER_BATCH
    return OLD_SERVER_POINTS_PER_REQUEST


def model_key(model: str) -> str:
    return hashlib.sha256(model.encode("utf-8")).hexdigest()[:32]


def point_position(end_time_s: float, identity: str) -> tuple[int, int]:
    """(timestamp ms, step) for a point: at the call's end, distinct per identity, identical on redelivery."""
    digest = hashlib.sha256(identity.encode("utf-8")).digest()
    return round(end_time_s * 1000), int.from_bytes(digest[:4], "big") % STEP_SPACE


def call_metrics(event: LLMCallEvent) -> list[Metric]:
    """The per-call points: latency, ttft (streams), tokens, cost, error and cache-hit flags."""
    timestamp, step = point_position(event.end_time, event.event_id)
    values = {
        "latency_ms": event.latency_ms,
        "ttft_ms": event.ttft_ms,
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.completion_tokens,
        "total_tokens": event.total_tokens,
        "cost_usd": event.cost_usd,
        "error": 1.0 if event.is_error else 0.0,
        "cache_hit": 1.0 if event.cache_hit else 0.0,
    }
    return [Metric(key, float(value), timestamp, step) for key, value in values.items() if value is not None]


def batch_rate_metrics(events: Sequence[LLMCallEvent]) -> list[Metric]:
    """requests / error_rate / cache_hit_rate over one model's calls in this batch (events distinct by id)."""
    if not events:
        return []
    identity = "\x00".join(sorted(event.event_id for event in events))
    timestamp, step = point_position(max(event.end_time for event in events), identity)
    count = len(events)
    errors = sum(1 for event in events if event.is_error)
    hits = sum(1 for event in events if event.cache_hit)
    return [
        Metric("requests", float(count), timestamp, step),
        Metric("error_rate", errors / count, timestamp, step),
        Metric("cache_hit_rate", hits / count, timestamp, step),
    ]


def metric_requests(
    events: Sequence[LLMCallEvent], limit: int = MAX_METRICS_PER_BATCH, counted: Sequence[LLMCallEvent] | None = None
) -> list[list[Metric]]:
    """One model's points cut into log_batch-sized requests, the rates over `counted` (default all) in the last."""
    points = [metric for event in events for metric in call_metrics(event)]
    rates = batch_rate_metrics(events if counted is None else counted)
    chunks = [points[i : i + limit] for i in range(0, len(points), limit)] or [[]]
    if len(chunks[-1]) + len(rates) > limit:
        chunks.append([])
    chunks[-1].extend(rates)
    return chunks


@dataclass
class ModelRuns:
    """Find-or-create of the one run per model, cached per container (concurrent creators: run_election.py)."""

    client: MlflowClient
    experiment_id: str
    run_ids: dict[str, str] = field(default_factory=dict)
    loaded: bool = False

    def __post_init__(self) -> None:
        self.election = RunElection(self.client, self.experiment_id, MODEL_KEY_TAG)

    def load(self) -> None:
        """One paged search for every model run the experiment already has; keys mid-election are left to run_for."""
        token = None
        found: dict[str, list[Candidate]] = {}
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{MODEL_KEY_TAG}` LIKE '%'",
                run_view_type=ViewType.ALL,
                max_results=1000,
                page_token=token,
            )
            for run in page:
                key = run.data.tags.get(MODEL_KEY_TAG)
                if key:
                    found.setdefault(key, []).append(Candidate.of(run))
            token = page.token
            if not token:
                break
        for key, candidates in found.items():
            live = [c for c in candidates if not c.deleted]
            if live and all(c.view is not None for c in live):
                self.run_ids[key] = min(live, key=lambda c: c.rank).run_id
        self.loaded = True

    def run_for(self, event: LLMCallEvent) -> str:
        if not self.loaded:
            self.load()
        key = model_key(event.model)
        if key not in self.run_ids:
            # Another container (or an earlier attempt of ours that failed half-way) may have made it since load().
            self.run_ids[key] = self.election.winner(key) or self._create(event, key)
        return self.run_ids[key]

    def forget(self, model: str) -> None:
        self.run_ids.pop(model_key(model), None)
        self.loaded = False

    def _create(self, event: LLMCallEvent, key: str) -> str:
        def create_run(tags: dict[str, str]) -> str:
            run = self.client.create_run(
                self.experiment_id,
                run_name=event.model[:MAX_RUN_NAME],
                tags={**tags, MODEL_TAG: event.model[:5000], "source": "litellm-mlflow"},
            )
            return run.info.run_id

        winner, mine = self.election.create(key, create_run)
        if mine:
            params = {"model": event.model, "provider": event.provider, "api_base": event.api_base}
            params_list = [Param(k, str(v)[:6000]) for k, v in params.items() if v]
            self.client.log_batch(winner, params=params_list, synchronous=True)
        return winner


@dataclass
class MetricsWriter:
    """Writes each model's points for a batch; failures are per model (all its calls in the batch).

    Requests go out `max_in_flight` at a time, in three waves so the server never sees two first writes to one run at
    once and the rate points still travel last: each model's first request (which may create the run), then its
    middle requests, then its last one (with the rates). A model whose request failed sends nothing more.
    """

    runs: ModelRuns
    points_per_request: int = MAX_METRICS_PER_BATCH
    max_in_flight: int = 8
    requests_sent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def write(
        self,
        events: Iterable[LLMCallEvent],
        deadline: float | None = None,
        already_stored: Collection[str] = (),
    ) -> dict[str, str]:
        """Returns {event_id: reason} for calls whose metrics are not known stored.

        `already_stored`: event ids an earlier delivery stored; their points are re-sent (a no-op) but they are not
        counted again in the batch rates.
        """
        by_model: dict[str, dict[str, LLMCallEvent]] = {}
        for event in events:
            by_model.setdefault(event.model, {}).setdefault(event.event_id, event)
        if not by_model:
            return {}
        if not self.runs.loaded:
            self.runs.load()
        plans: dict[str, list[list[Metric]]] = {}
        for model, model_events in by_model.items():
            calls = list(model_events.values())
            counted = [event for event in calls if event.event_id not in already_stored]
            plans[model] = metric_requests(calls, self.points_per_request, counted)
        failures: dict[str, str] = {}
        outage: list[str] = []  # set once: the server is unreachable, start nothing more
        waves = [
            [(model, chunks[0], True) for model, chunks in plans.items()],
            [(model, chunk, False) for model, chunks in plans.items() for chunk in chunks[1:-1]],
            [(model, chunks[-1], False) for model, chunks in plans.items() if len(chunks) > 1],
        ]

        def send(model: str, chunk: list[Metric], first: bool) -> None:
            if model in failures:
                return
            if outage:
                failures[model] = outage[0]
            elif deadline is not None and time.monotonic() >= deadline:
                failures[model] = DEADLINE_REASON
            else:
                try:
                    self._send(by_model[model], chunk, retry_on_rejection=first)
                except MlflowException as exc:
                    if _is_rejection(exc):
                        failures[model] = f"MLflow rejected the metrics: {short_text(exc)}"
                    else:
                        outage.append(f"MLflow unavailable: {short_text(exc)}")
                        failures[model] = outage[0]

        with ThreadPoolExecutor(max_workers=max(1, self.max_in_flight)) as pool:
            for wave in waves:
                list(pool.map(lambda task: send(*task), wave))
        return {event_id: failures[model] for model in failures for event_id in by_model[model]}

    def _send(self, model_events: dict[str, LLMCallEvent], chunk: list[Metric], retry_on_rejection: bool) -> None:
        event = next(iter(model_events.values()))
        run_id = self.runs.run_for(event)
        with self._lock:
            self.requests_sent += 1
        try:
            self.runs.client.log_batch(run_id, metrics=chunk, synchronous=True)
        except MlflowException as exc:
            if retry_on_rejection and _is_rejection(exc):
                # e.g. the cached run was deleted by hand: find or create it again, once.
                self.runs.forget(event.model)
                self._send(model_events, chunk, retry_on_rejection=False)
                return
            raise


def _is_rejection(exc: MlflowException) -> bool:
    status = exc.get_http_status_code()
    return 400 <= status < 500 and status not in (408, 429)
