"""Usage figures of stored LLM calls, and the CloudWatch names they are published under: one definition for the
consumer that emits them (sink/usage_emf.py), the CDK dashboard and alarms that read them, and the local demo.

Pure Python, no third-party imports: the Lambda, the CDK app and the demo all load it.

What is counted: only calls the sink reports as stored, once per event id. A redelivered event the sink found
already stored (`WriteResult.already_stored`, from the sink's stored-trace look-up on every trace path) is not
counted again. Only when a batch's time window holds too many traces to read (sink/stored_traces.py) on a server
that makes no duplicates anyway may an event stored earlier be counted twice.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from litellm_mlflow.events import LLMCallEvent

NAMESPACE = "LitellmMlflow"  # the consumer's POWERTOOLS_METRICS_NAMESPACE
TEAM_METRICS_ENV = "LITELLM_MLFLOW_TEAM_METRICS"  # "false" turns the per-team metrics off

# Dimension names. A model group and a team are separate dimension sets, so each value is its own billed metric.
MODEL_GROUP = "ModelGroup"
TEAM = "Team"

# Metric names (unit in brackets). Per model group, per batch: CALLS, ERRORS, INPUT_TOKENS, OUTPUT_TOKENS, COST
# (one value each) and, per call, LATENCY (ms) and ERROR_RATE (0 or 100) as EMF value arrays, so CloudWatch keeps
# the distribution: p50/p95/p99 of LATENCY, and Average of ERROR_RATE = the share of failed calls, which is what
# one Metrics Insights alarm can watch for every model group at once. Per team: CALLS and COST.
CALLS = "Calls"  # [Count]
ERRORS = "Errors"  # [Count]
ERROR_RATE = "ErrorRate"  # [Percent] one value per call: 100 for a failed call, 0 otherwise
INPUT_TOKENS = "InputTokens"  # [Count]
OUTPUT_TOKENS = "OutputTokens"  # [Count]
COST = "CostUSD"  # [None] LiteLLM's response_cost; unpriced calls add 0
LATENCY = "LatencyMs"  # [Milliseconds] one value per call

MODEL_GROUP_METRICS = (CALLS, ERRORS, ERROR_RATE, INPUT_TOKENS, OUTPUT_TOKENS, COST, LATENCY)
TEAM_METRICS = (CALLS, COST)

# Pipeline metrics the consumer handler emits once per batch with the dimension `service`.
SERVICE = "service"
CONSUMER_SERVICE = "litellm-mlflow-consumer"
EVENTS_WRITTEN = "EventsWritten"
EVENTS_FAILED = "EventsFailed"
EVENTS_DEAD_LETTERED = "EventsDeadLettered"  # records that can never be stored, sent to the DLQ with their reason
BATCH_SIZE = "BatchSize"
OLDEST_EVENT_AGE = "OldestEventAgeSeconds"
PIPELINE_METRICS = (BATCH_SIZE, EVENTS_WRITTEN, EVENTS_FAILED, EVENTS_DEAD_LETTERED, OLDEST_EVENT_AGE)

# CloudWatch's price for a standard-resolution custom metric (first 10,000 metrics, us-east-1), USD per month.
PRICE_PER_METRIC_MONTH = 0.30
MAX_DIMENSION_VALUE = 1024  # CloudWatch's limit
UNKNOWN = "unknown"


def model_group_of(event: LLMCallEvent) -> str:
    """The proxy's model group (the name callers ask for), else the model; what the dashboard lists."""
    return _dimension_value(event.model_group or event.model) or UNKNOWN


def team_of(event: LLMCallEvent) -> str | None:
    """The team's alias (readable on a dashboard), else its id; None for calls made without a team key."""
    return _dimension_value(event.team_alias or event.team_id)


def _dimension_value(text: str | None) -> str | None:
    value = (text or "").strip()
    return value[:MAX_DIMENSION_VALUE] or None


@dataclass
class UsageFigures:
    """What one model group or one team used: the numbers the EMF documents carry."""

    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0  # successes LiteLLM could not price: their cost is unknown, not 0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def error_rate_percent(self) -> float:
        return 100.0 * self.errors / self.calls if self.calls else 0.0

    def add_call(self, event: LLMCallEvent) -> None:
        self.calls += 1
        self.errors += int(event.is_error)
        self.input_tokens += event.prompt_tokens or 0
        self.output_tokens += event.completion_tokens or 0
        if event.cost_usd is not None and math.isfinite(event.cost_usd):
            self.cost_usd += event.cost_usd
        self.unpriced_calls += int(event.cost_unknown)
        self.latencies_ms.append(event.latency_ms)

    def merge(self, other: UsageFigures) -> None:
        self.calls += other.calls
        self.errors += other.errors
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd += other.cost_usd
        self.unpriced_calls += other.unpriced_calls
        self.latencies_ms.extend(other.latencies_ms)


@dataclass
class BatchUsage:
    """Usage of the calls one batch stored, by model group and by team."""

    by_model_group: dict[str, UsageFigures] = field(default_factory=dict)
    by_team: dict[str, UsageFigures] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(figures.calls for figures in self.by_model_group.values())

    def merge(self, other: BatchUsage) -> None:
        for mine, theirs in ((self.by_model_group, other.by_model_group), (self.by_team, other.by_team)):
            for key, figures in theirs.items():
                mine.setdefault(key, UsageFigures()).merge(figures)


def stored_calls(
    events: Sequence[LLMCallEvent], failed: Collection[int], already_stored: Collection[int] = ()
) -> list[LLMCallEvent]:
    """The events this write stored for the first time: not failed, not found already stored, once per event id."""
    seen: set[str] = set()
    stored = []
    for index, event in enumerate(events):
        if index in failed or index in already_stored or event.event_id in seen:
            continue
        seen.add(event.event_id)
        stored.append(event)
    return stored


def batch_usage(calls: Iterable[LLMCallEvent]) -> BatchUsage:
    """Usage by model group and by team (calls without a team are counted in their model group only)."""
    usage = BatchUsage()
    for event in calls:
        usage.by_model_group.setdefault(model_group_of(event), UsageFigures()).add_call(event)
        team = team_of(event)
        if team is not None:
            usage.by_team.setdefault(team, UsageFigures()).add_call(event)
    return usage


def monthly_metric_cost_usd(model_groups: int, teams: int, team_metrics: bool = True) -> float:
    """CloudWatch's monthly charge for the usage metrics alone (each metric name x dimension value is one metric)."""
    metrics = model_groups * len(MODEL_GROUP_METRICS) + (teams * len(TEAM_METRICS) if team_metrics else 0)
    return round(metrics * PRICE_PER_METRIC_MONTH, 2)
