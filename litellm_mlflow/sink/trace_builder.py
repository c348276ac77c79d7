"""One LiteLLM call -> one MLflow trace (a single CHAT_MODEL span), in the exact shape MLflow's own integrations write.

The span carries what the MLflow UI reads: `mlflow.spanInputs` `{"messages": [...]}` and an OpenAI-style
`mlflow.spanOutputs` (chat view, `mlflow.message.format` = "openai"), `mlflow.chat.tokenUsage` (cache-read and
cache-creation counts included), `mlflow.llm.model`, `mlflow.llm.provider`, `mlflow.llm.cost` (LiteLLM's own price, so
the server never prices it again), tools, an ERROR status plus an `exception` event for failures, and the time to
first token for streams. Times are the call's own.

Named for what clients call: the trace name and `mlflow.llm.model` are LiteLLM's model group (the proxy's
`model_name`), so the Overview's breakdowns and the trace list read in those names; the deployment, its id and api base
are span details. A figure LiteLLM did not know is left out (`litellm.cost_unknown` marks an unpriced call), never 0.

Only what people filter on is a trace tag (each costs the server a row per trace): the trace name, team id/alias,
key alias, end user and org. User and session are MLflow's own metadata (the Overview's filters, the Sessions view).
The request id, cache hit, request tags and the rest are span attributes, shown with the span.

Ids are derived from (experiment id, event id), so a redelivered event maps onto the trace it already made.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import Span, SpanType, TraceInfo, TraceLocation, TraceState
from mlflow.tracing.constant import (
    MAX_CHARS_IN_TRACE_INFO_METADATA,
    MAX_CHARS_IN_TRACE_INFO_TAGS_VALUE,
    TRACE_REQUEST_ID_PREFIX,
    TRACE_SCHEMA_VERSION,
    TRACE_SCHEMA_VERSION_KEY,
    CostKey,
    SpanAttributeKey,
    TokenUsageKey,
    TraceMetadataKey,
    TraceTagKey,
)
from mlflow.tracing.utils import build_otel_context, dump_span_attribute_value
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Status, StatusCode

from litellm_mlflow.events import LLMCallEvent

MESSAGE_FORMAT = "openai"
# Model parameters that belong in the chat view's inputs (the rest stay in the payload, not the trace).
INPUT_PARAMETERS = (
    "tools", "tool_choice", "functions", "function_call", "response_format", "temperature", "top_p", "max_tokens",
    "max_completion_tokens", "stop", "n", "seed", "stream", "user", "parallel_tool_calls", "reasoning_effort",
)  # fmt: skip
SPAN_TYPE_BY_CALL_TYPE = {
    "completion": SpanType.CHAT_MODEL,
    "acompletion": SpanType.CHAT_MODEL,
    "text_completion": SpanType.LLM,
    "atext_completion": SpanType.LLM,
    "embedding": SpanType.EMBEDDING,
    "aembedding": SpanType.EMBEDDING,
    "responses": SpanType.CHAT_MODEL,
    "aresponses": SpanType.CHAT_MODEL,
}
TRUNCATION_SUFFIX = "..."
# Fields the event contract dropped, clamped or repaired so the call could be stored (searchable: tag exists).
REPAIRED_TAG = "litellm_mlflow.repaired"


@dataclass(frozen=True)
class BuiltTrace:
    """Everything both writers need: the span, and the trace-level tags / metadata that go beside it."""

    event_id: str
    experiment_id: str
    otel_trace_id: int
    span: Span
    tags: dict[str, str]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def trace_id(self) -> str:
        return mlflow_trace_id(self.otel_trace_id)

    def trace_info(self) -> TraceInfo:
        """The TraceInfo the SDK path sends with StartTraceV3 (tags and metadata included), with the trace-level token
        usage and cost MLflow's own exporter adds (servers before the span-aggregating ones show only these)."""
        span = self.span
        metadata = {**self.metadata, TRACE_SCHEMA_VERSION_KEY: str(TRACE_SCHEMA_VERSION)}
        for attribute, key in ((SpanAttributeKey.CHAT_USAGE, TraceMetadataKey.TOKEN_USAGE),
                               (SpanAttributeKey.LLM_COST, TraceMetadataKey.COST)):  # fmt: skip
            value = span.attributes.get(attribute)
            if value:
                metadata[key] = json.dumps(value)
        return TraceInfo(
            trace_id=self.trace_id,
            trace_location=TraceLocation.from_experiment_id(self.experiment_id),
            request_time=span.start_time_ns // 1_000_000,
            execution_duration=max(0, (span.end_time_ns - span.start_time_ns) // 1_000_000),
            state=TraceState.ERROR if span.status.status_code == "ERROR" else TraceState.OK,
            client_request_id=self.event_id,
            trace_metadata=metadata,
            tags=dict(self.tags),
        )


def derived_ids(experiment_id: str, event_id: str) -> tuple[int, int]:
    """(128-bit trace id, 64-bit span id) from the experiment and the event: same inputs, same trace."""
    digest = hashlib.sha256(f"litellm-mlflow/1\x00{experiment_id}\x00{event_id}".encode()).digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:24], "big") or 1
    return trace_id, span_id


def mlflow_trace_id(otel_trace_id: int) -> str:
    """MLflow's id for a trace: `tr-` + the 32 hex digits of the OpenTelemetry trace id."""
    return f"{TRACE_REQUEST_ID_PREFIX}{otel_trace_id:032x}"


def trace_id_for(experiment_id: str, event_id: str) -> str:
    """The MLflow trace id an event gets in an experiment, whichever consumer writes it (what a reader can look for)."""
    return mlflow_trace_id(derived_ids(experiment_id, event_id)[0])


def build_trace(event: LLMCallEvent, experiment_id: str) -> BuiltTrace:
    """The trace for one event; raises (ValueError/TypeError) only for events that cannot be represented."""
    otel_trace_id, span_id = derived_ids(experiment_id, event.event_id)
    start_ns = _to_ns(event.start_time)
    end_ns = max(start_ns, _to_ns(event.end_time))
    trace_id = mlflow_trace_id(otel_trace_id)

    attributes = _span_attributes(event, trace_id)
    events = []
    status = Status(StatusCode.OK)
    if event.is_error:
        error = event.error
        message = (error.message if error else None) or f"LiteLLM call {event.status}"
        status = Status(StatusCode.ERROR, _truncate(message, 1000))
        events.append(Event("exception", _exception_attributes(event, message), timestamp=end_ns))
    if event.ttft_ms is not None and event.completion_start_time is not None:
        ttft = {"ttft_ms": _ms(event.ttft_ms)}
        events.append(Event("first_token", ttft, timestamp=_to_ns(event.completion_start_time)))

    readable = ReadableSpan(
        name=trace_name(event),
        context=build_otel_context(otel_trace_id, span_id),
        parent=None,
        attributes={key: dump_span_attribute_value(value) for key, value in attributes.items()},
        events=events,
        status=status,
        start_time=start_ns,
        end_time=end_ns,
        resource=Resource.get_empty(),
    )
    return BuiltTrace(
        event_id=event.event_id,
        experiment_id=experiment_id,
        otel_trace_id=otel_trace_id,
        span=Span(readable),
        tags=trace_tags(event),
        metadata=trace_metadata(event),
    )


def trace_name(event: LLMCallEvent) -> str:
    """The name clients call the model by: LiteLLM's model group (the proxy's `model_name`), else the model."""
    return _truncate(event.model_group or event.model, MAX_CHARS_IN_TRACE_INFO_TAGS_VALUE)


def _span_attributes(event: LLMCallEvent, trace_id: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        SpanAttributeKey.REQUEST_ID: trace_id,
        SpanAttributeKey.SPAN_TYPE: SPAN_TYPE_BY_CALL_TYPE.get(event.call_type or "", SpanType.LLM),
        SpanAttributeKey.INPUTS: span_inputs(event),
        SpanAttributeKey.MESSAGE_FORMAT: MESSAGE_FORMAT,
        SpanAttributeKey.MODEL: event.model_group or event.model,
    }
    outputs = span_outputs(event)
    if outputs is not None:
        attributes[SpanAttributeKey.OUTPUTS] = outputs
    if event.provider:
        attributes[SpanAttributeKey.MODEL_PROVIDER] = event.provider
    usage = token_usage(event)
    if usage:
        attributes[SpanAttributeKey.CHAT_USAGE] = usage
    cost = llm_cost(event)
    if cost:
        attributes[SpanAttributeKey.LLM_COST] = cost
    tools = event.model_parameters.get("tools")
    if isinstance(tools, list) and tools:
        attributes[SpanAttributeKey.CHAT_TOOLS] = tools
    extras = {
        "litellm.call_id": event.call_id,
        "litellm.call_type": event.call_type,
        "litellm.model_group": event.model_group,
        "litellm.deployment": event.model,
        "litellm.model_id": event.model_id,
        "litellm.api_base": event.api_base,
        "litellm.stream": event.stream,
        "litellm.cache_hit": event.cache_hit,
        "litellm.cost_unknown": event.cost_unknown or None,
        "litellm.reasoning_tokens": event.reasoning_tokens,
        "litellm.request_tags": list(event.request_tags) or None,
        "litellm.trace_id": event.litellm_trace_id,
        "litellm.ttft_ms": None if event.ttft_ms is None else _ms(event.ttft_ms),
        "litellm.latency_ms": _ms(event.latency_ms),
        "litellm.truncated": event.truncated or None,
        "litellm.content_logged": None if event.content_logged else False,
        "litellm.invalid_fields": list(event.invalid_fields) or None,
        **cache_costs(event),
    }
    attributes.update({key: value for key, value in extras.items() if value not in (None, "")})
    return attributes


def span_inputs(event: LLMCallEvent) -> dict[str, Any]:
    """OpenAI request shape: `{"model", "messages", ...}` so the UI renders the chat view."""
    inputs: dict[str, Any] = {"model": event.model}
    if event.messages is not None:
        inputs["messages"] = event.messages
    elif not event.content_logged:
        inputs["messages"] = []
    for key in INPUT_PARAMETERS:
        value = event.model_parameters.get(key)
        if value not in (None, "", [], {}):
            inputs[key] = value
    return inputs


def span_outputs(event: LLMCallEvent) -> Any:
    """LiteLLM's response is already an OpenAI ChatCompletion dict; failures have none (an empty `{}`)."""
    response = event.response
    if response in (None, "", {}, []):
        return None
    return response


def token_usage(event: LLMCallEvent) -> dict[str, int]:
    """MLflow's token keys, each only when LiteLLM counted it (a failure has none); cache counts are part of input."""
    usage = {
        TokenUsageKey.INPUT_TOKENS: event.prompt_tokens,
        TokenUsageKey.OUTPUT_TOKENS: event.completion_tokens,
        TokenUsageKey.TOTAL_TOKENS: event.total_tokens,
    }
    if all(value in (None, 0) for value in usage.values()):
        return {}
    usage[TokenUsageKey.CACHE_READ_INPUT_TOKENS] = event.cache_read_tokens
    usage[TokenUsageKey.CACHE_CREATION_INPUT_TOKENS] = event.cache_creation_tokens
    return {key: int(value) for key, value in usage.items() if value is not None}


# LiteLLM's cost breakdown keys beyond MLflow's three, kept as span details.
CACHE_COST_KEYS = ("cache_read_cost", "cache_creation_cost", "reasoning_cost", "tool_usage_cost")


def llm_cost(event: LLMCallEvent) -> dict[str, float]:
    """LiteLLM's price for the call; input/output split from `cost_breakdown` when LiteLLM gives one.

    LiteLLM's `input_cost` already holds cache-read and cache-creation costs (input + output = total); should a
    breakdown not add up that way, the cache costs are added to input so MLflow's split still sums to the total.
    """
    if event.cost_usd is None:
        return {}
    cost = {CostKey.TOTAL_COST: float(event.cost_usd)}
    breakdown = _breakdown(event)
    if CostKey.INPUT_COST in breakdown and CostKey.OUTPUT_COST in breakdown:
        input_cost, output_cost = breakdown[CostKey.INPUT_COST], breakdown[CostKey.OUTPUT_COST]
        cache = breakdown.get("cache_read_cost", 0.0) + breakdown.get("cache_creation_cost", 0.0)
        extra = breakdown.get("tool_usage_cost", 0.0)
        if cache and not math.isclose(input_cost + output_cost + extra, cost[CostKey.TOTAL_COST], rel_tol=1e-6):
            input_cost += cache
        cost[CostKey.INPUT_COST], cost[CostKey.OUTPUT_COST] = input_cost, output_cost
    return cost


def cache_costs(event: LLMCallEvent) -> dict[str, float]:
    """Cache-read, cache-creation, reasoning and tool costs as `litellm.<key>` span attributes (non-zero only)."""
    if event.cost_usd is None:
        return {}
    breakdown = _breakdown(event)
    return {f"litellm.{key}": breakdown[key] for key in CACHE_COST_KEYS if breakdown.get(key)}


def _breakdown(event: LLMCallEvent) -> dict[str, float]:
    breakdown = event.payload.get("cost_breakdown")
    if not isinstance(breakdown, Mapping):
        return {}
    return {
        key: float(value)
        for key, value in breakdown.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }


def _exception_attributes(event: LLMCallEvent, message: str) -> dict[str, str]:
    error = event.error
    attributes = {
        "exception.type": (error.error_class if error else None) or "LiteLLMError",
        "exception.message": message,
    }
    if error and error.error_code:
        attributes["exception.code"] = error.error_code
    if error and error.provider:
        attributes["exception.provider"] = error.provider
    if error and error.traceback:
        attributes["exception.stacktrace"] = error.traceback
    return attributes


# Trace tags people filter on (MLflow search `tag.<name>`); each is written only when LiteLLM gives it.
TEAM_ID_TAG, TEAM_ALIAS_TAG, KEY_ALIAS_TAG = "team_id", "team_alias", "key_alias"
END_USER_TAG, ORG_ID_TAG, ORG_ALIAS_TAG = "end_user", "org_id", "org_alias"
# Streamed calls only: the usage rollup (litellm_mlflow/rollup) reads trace infos, never spans, for its TTFT p50.
TTFT_TAG = "ttft_ms"


def trace_tags(event: LLMCallEvent) -> dict[str, str]:
    """The trace name plus who paid: team, key, end user, org (and the fields repaired to store the call, when there
    are any). Everything else is a span attribute, because each
    tag is a row the server writes per trace (issue 11: 0.25-0.6 ms each) and a request's own tags would add a column
    per distinct key to the UI's picker."""
    tags = {
        TraceTagKey.TRACE_NAME: trace_name(event),
        TEAM_ID_TAG: event.team_id,
        TEAM_ALIAS_TAG: event.team_alias,
        KEY_ALIAS_TAG: event.key_alias,
        END_USER_TAG: event.end_user,
        ORG_ID_TAG: event.org_id,
        ORG_ALIAS_TAG: event.org_alias,
        REPAIRED_TAG: ",".join((*event.invalid_fields, *event.repaired_fields)),
        TTFT_TAG: None if event.ttft_ms is None else str(_ms(event.ttft_ms)),
    }
    return {key: _truncate(value, MAX_CHARS_IN_TRACE_INFO_TAGS_VALUE) for key, value in tags.items() if value}


def trace_metadata(event: LLMCallEvent) -> dict[str, str]:
    """`mlflow.trace.user` / `mlflow.trace.session`: what the UI's user and session views group by."""
    metadata = {}
    user = event.user_id or event.end_user
    if user:
        metadata[TraceMetadataKey.TRACE_USER] = _truncate(user, MAX_CHARS_IN_TRACE_INFO_METADATA)
    session = event.session_id or None
    if session:
        metadata[TraceMetadataKey.TRACE_SESSION] = _truncate(session, MAX_CHARS_IN_TRACE_INFO_METADATA)
    return metadata


def _ms(value: float) -> float:
    """Milliseconds to 0.1 ms: what a clock on another machine can tell apart, and readable in the UI."""
    return round(value, 1)


def _to_ns(seconds: float) -> int:
    return round(seconds * 1_000_000) * 1_000


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(TRUNCATION_SUFFIX)] + TRUNCATION_SUFFIX
