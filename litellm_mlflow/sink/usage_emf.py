"""The consumer's usage metrics: what a batch stored, by model group and by team, as CloudWatch EMF log lines.

One EMF document per model group (dimension `ModelGroup`) and per team (dimension `Team`), printed through
Powertools' non-singleton `EphemeralMetrics`, so they never mix with the handler's own per-batch metrics (dimension
`service`). Latency and error rate go out one value per call (EMF value arrays): CloudWatch then answers p50/p95/p99
and a weighted average. Standard (60 s) resolution: finer costs more and Metrics Insights alarms read minutes anyway.

EMF allows at most 100 values a metric in one document, so a model group's calls are split into documents of 100.
Each document's metric set is handed to Powertools whole (see `_flush`), not value by value: `add_metric` also
prints a document by itself, ignoring POWERTOOLS_METRICS_DISABLED, when a metric reaches 100 values.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from litellm_mlflow import usage_metrics as names
from litellm_mlflow.events import LLMCallEvent
from litellm_mlflow.sink.writer import WriteResult
from litellm_mlflow.usage_metrics import BatchUsage, UsageFigures, batch_usage, stored_calls

logger = logging.getLogger(__name__)

VALUES_PER_DOCUMENT = 100  # EMF's limit for one metric's value array
_OFF = ("false", "0", "no", "off")
_ON = ("true", "1", "yes", "on", "")

UsageListener = Callable[[BatchUsage], None]
_listeners: list[UsageListener] = []


def add_listener(listener: UsageListener) -> None:
    """Also hand every batch's usage to `listener` (the local demo totals it for its summary)."""
    _listeners.append(listener)


def remove_listener(listener: UsageListener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def team_metrics_enabled(environ: dict[str, str] | None = None) -> bool:
    """LITELLM_MLFLOW_TEAM_METRICS: on unless "false"/"0"/"no"/"off"; anything else is reported and left on."""
    value = ((os.environ if environ is None else environ).get(names.TEAM_METRICS_ENV) or "").strip().lower()
    if value in _OFF:
        return False
    if value not in _ON:
        logger.warning("%s=%r is not true or false; per-team metrics stay on", names.TEAM_METRICS_ENV, value)
    return True


def publish_usage(events: Sequence[LLMCallEvent], result: WriteResult) -> BatchUsage:
    """Emit the usage of the calls the sink's `result` reports as newly stored; returns it."""
    calls = stored_calls(events, result.failed, result.already_stored)
    usage = batch_usage(calls)
    try:
        emit(usage, team_metrics=team_metrics_enabled())
    except Exception as exc:  # the calls are stored: a metric that cannot be printed must not send them back to SQS
        logger.warning("usage metrics not emitted: %s: %s", type(exc).__name__, exc)
    for listener in list(_listeners):
        listener(usage)
    return usage


def emit(usage: BatchUsage, *, team_metrics: bool = True, namespace: str = names.NAMESPACE) -> None:
    for group, figures in sorted(usage.by_model_group.items()):
        for document in _model_group_documents(figures):
            _flush(namespace, names.MODEL_GROUP, group, document)
    if team_metrics:
        for team, figures in sorted(usage.by_team.items()):
            _flush(namespace, names.TEAM, team, _team_document(figures))


Document = list[tuple[str, MetricUnit, float]]


def _model_group_documents(figures: UsageFigures) -> Iterator[Document]:
    totals: Document = [
        (names.CALLS, MetricUnit.Count, figures.calls),
        (names.ERRORS, MetricUnit.Count, figures.errors),
        (names.INPUT_TOKENS, MetricUnit.Count, figures.input_tokens),
        (names.OUTPUT_TOKENS, MetricUnit.Count, figures.output_tokens),
        (names.COST, MetricUnit.NoUnit, figures.cost_usd),
    ]
    error_flags = [100.0] * figures.errors + [0.0] * (figures.calls - figures.errors)
    for start in range(0, max(figures.calls, 1), VALUES_PER_DOCUMENT):
        document = totals if start == 0 else []
        end = start + VALUES_PER_DOCUMENT
        document = document + [(names.LATENCY, MetricUnit.Milliseconds, v) for v in figures.latencies_ms[start:end]]
        document += [(names.ERROR_RATE, MetricUnit.Percent, v) for v in error_flags[start:end]]
        yield document


def _team_document(figures: UsageFigures) -> Document:
    return [(names.CALLS, MetricUnit.Count, figures.calls), (names.COST, MetricUnit.NoUnit, figures.cost_usd)]


def _flush(namespace: str, dimension: str, value: str, document: Document) -> None:
    # The metric set goes in through the constructor, in Powertools' own shape, rather than one add_metric call a
    # value: add_metric formats the metric's whole value list into a debug message on every call (even with debug
    # off), which made a 1,000-call batch cost ~0.13 s (bench/bench_usage_metrics.py). Units come from MetricUnit;
    # Powertools still checks the namespace and serializes the document.
    metric_set: dict[str, dict] = {}
    for name, unit, number in document:
        entry = metric_set.setdefault(name, {"Unit": unit.value, "StorageResolution": 60, "Value": []})
        entry["Value"].append(float(number))
    metrics = EphemeralMetrics(namespace=namespace, service="", metric_set=metric_set)  # service "": no such dimension
    metrics.add_dimension(name=dimension, value=value)
    metrics.flush_metrics()
