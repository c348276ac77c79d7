"""Per-model runs (seed 002: one row per model) and their time-series metrics, written with `log_batch`.

Point identity: MLflow stores a metric point once per (key, timestamp, step, value); an identical point sent again
is ignored. So every point is a pure function of the event(s) it describes:
- per call: timestamp = the call's end time (ms); step = timestamp * 1000 + (hash(event id) mod 1000). The step
  orders points by time and keeps two calls that end in the same millisecond with the same value apart, and a
  redelivered event produces exactly the points it produced before.
- per batch (requests, error_rate, cache_hit_rate over one model's calls in the batch): timestamp = the newest end
  time among them; step = timestamp * 1000 + (hash(sorted event ids) mod 1000). Redelivering the same batch gives the
  same points. Only calls whose trace is already stored are counted, and the rate points travel in the model's last
  request, so calls that fail here are not counted now and are counted once when they come back. (A call whose
  writes all succeeded but whose SQS acknowledgement was lost is counted in a second batch's rates; its per-call
  points and trace stay single.)

Runs: found by the tag `litellm_mlflow.model_key` (a hash of the model name, safe in filters), created when missing.
Concurrent creators converge on the oldest run (start time, then run id); a creator that lost deletes its own run
before writing anything to it. Found runs are cached for the life of the Lambda container.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_METRICS_PER_BATCH

from litellm_mlflow.events import LLMCallEvent

MODEL_KEY_TAG = "litellm_mlflow.model_key"
MODEL_TAG = "model"
RATE_METRICS = ("requests", "error_rate", "cache_hit_rate")
DEADLINE_REASON = "not written: the invocation's time ran out before this call's metrics were sent"
MAX_RUN_NAME = 250


def model_key(model: str) -> str:
    return hashlib.sha256(model.encode("utf-8")).hexdigest()[:32]


def _offset(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") % 1000


def point_position(end_time_s: float, identity: str) -> tuple[int, int]:
    """(timestamp ms, step) for a point: time-ordered, unique per identity, identical on redelivery."""
    timestamp = round(end_time_s * 1000)
    return timestamp, timestamp * 1000 + _offset(identity)


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


def metric_requests(events: Sequence[LLMCallEvent], limit: int = MAX_METRICS_PER_BATCH) -> list[list[Metric]]:
    """One model's points cut into log_batch-sized requests, the batch rates in the last one."""
    points = [metric for event in events for metric in call_metrics(event)]
    rates = batch_rate_metrics(events)
    chunks = [points[i : i + limit] for i in range(0, len(points), limit)] or [[]]
    if len(chunks[-1]) + len(rates) > limit:
        chunks.append([])
    chunks[-1].extend(rates)
    return chunks


@dataclass
class ModelRuns:
    """Find-or-create of the one run per model, cached per container."""

    client: MlflowClient
    experiment_id: str
    run_ids: dict[str, str] = field(default_factory=dict)
    loaded: bool = False

    def load(self) -> None:
        """One paged search for every model run the experiment already has (the oldest wins per model)."""
        token = None
        found: dict[str, tuple[int, str]] = {}
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{MODEL_KEY_TAG}` LIKE '%'",
                max_results=1000,
                page_token=token,
            )
            for run in page:
                key = run.data.tags.get(MODEL_KEY_TAG)
                rank = (run.info.start_time or 0, run.info.run_id)
                if key and (key not in found or rank < found[key]):
                    found[key] = rank
            token = page.token
            if not token:
                break
        self.run_ids.update({key: rank[1] for key, rank in found.items()})
        self.loaded = True

    def run_for(self, event: LLMCallEvent) -> str:
        if not self.loaded:
            self.load()
        key = model_key(event.model)
        if key not in self.run_ids:
            # Another container (or an earlier attempt of ours that failed half-way) may have made it since load().
            self.run_ids[key] = self._oldest(key) or self._create(event, key)
        return self.run_ids[key]

    def forget(self, model: str) -> None:
        self.run_ids.pop(model_key(model), None)
        self.loaded = False

    def _create(self, event: LLMCallEvent, key: str) -> str:
        run = self.client.create_run(
            self.experiment_id,
            run_name=event.model[:MAX_RUN_NAME],
            tags={MODEL_KEY_TAG: key, MODEL_TAG: event.model[:5000], "source": "litellm-mlflow"},
        )
        mine = run.info.run_id
        winner = self._oldest(key) or mine
        if winner != mine:
            self.client.delete_run(mine)
            return winner
        params = {"model": event.model, "provider": event.provider, "api_base": event.api_base}
        self.client.log_batch(mine, params=[Param(k, str(v)[:6000]) for k, v in params.items() if v], synchronous=True)
        return mine

    def _oldest(self, key: str) -> str | None:
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{MODEL_KEY_TAG}` = '{key}'", max_results=100
        )
        ranked = sorted((run.info.start_time or 0, run.info.run_id) for run in runs)
        return ranked[0][1] if ranked else None


@dataclass
class MetricsWriter:
    """Writes each model's points for a batch; failures are per model (all its calls in the batch)."""

    runs: ModelRuns
    requests_sent: int = 0

    def write(self, events: Iterable[LLMCallEvent], deadline: float | None = None) -> dict[str, str]:
        """Returns {event_id: reason} for calls whose metrics are not known stored."""
        by_model: dict[str, dict[str, LLMCallEvent]] = {}
        for event in events:
            by_model.setdefault(event.model, {}).setdefault(event.event_id, event)
        failures: dict[str, str] = {}
        models = list(by_model)
        for index, model in enumerate(models):
            model_events = list(by_model[model].values())
            if deadline is not None and time.monotonic() >= deadline:
                for pending in models[index:]:
                    failures.update(dict.fromkeys(by_model[pending], DEADLINE_REASON))
                break
            try:
                self._write_model(model_events, retry_on_rejection=True)
            except MlflowException as exc:
                if _is_rejection(exc):
                    failures.update(dict.fromkeys(by_model[model], f"MLflow rejected the metrics: {_short(exc)}"))
                    continue
                reason = f"MLflow unavailable: {_short(exc)}"
                for pending in models[index:]:
                    failures.update(dict.fromkeys(by_model[pending], reason))
                break
        return failures

    def _write_model(self, events: list[LLMCallEvent], retry_on_rejection: bool) -> None:
        run_id = self.runs.run_for(events[0])
        try:
            for chunk in metric_requests(events):
                self.requests_sent += 1
                self.runs.client.log_batch(run_id, metrics=chunk, synchronous=True)
        except MlflowException as exc:
            if retry_on_rejection and _is_rejection(exc):
                # e.g. the cached run was deleted by hand: find or create it again, once.
                self.runs.forget(events[0].model)
                self._write_model(events, retry_on_rejection=False)
                return
            raise


def _is_rejection(exc: MlflowException) -> bool:
    status = exc.get_http_status_code()
    return 400 <= status < 500 and status not in (408, 429)


def _short(value: object, limit: int = 300) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."
