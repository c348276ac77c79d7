"""One LiteLLM call -> one MLflow trace (a single CHAT_MODEL span), in the exact shape MLflow's own integrations write.

The span carries what the MLflow UI reads: `mlflow.spanInputs` `{"messages": [...]}` and an OpenAI-style
`mlflow.spanOutputs` (chat view, `mlflow.message.format` = "openai"), `mlflow.chat.tokenUsage`, `mlflow.llm.model`,
`mlflow.llm.provider`, `mlflow.llm.cost` (LiteLLM's own price, so the server never prices it again), tools, an ERROR
status plus an `exception` event for failures, and the time to first token for streams. Times are the call's own.

Ids are derived from (experiment id, event id), so a redelivered event maps onto the trace it already made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import Span, SpanType, TraceInfo, TraceLocation, TraceState
from mlflow.tracing.constant import (
    MAX_CHARS_IN_TRACE_INFO_METADATA,
    MAX_CHARS_IN_TRACE_INFO_TAGS_KEY,
    MAX_CHARS_IN_TRACE_INFO_TAGS_VALUE,
    TRACE_REQUEST_ID_PREFIX,
    TRACE_SCHEMA_VERSION,
    TRACE_SCHEMA_VERSION_KEY,
    CostKey,
    SpanAttributeKey,
    TokenUsageKey,
    TraceMetadataKey,
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
        """MLflow's id for the trace: `tr-` + the 32 hex digits of the OpenTelemetry trace id."""
        return f"{TRACE_REQUEST_ID_PREFIX}{self.otel_trace_id:032x}"

    def trace_info(self) -> TraceInfo:
        """The TraceInfo the SDK path sends with StartTraceV3 (tags and metadata included)."""
        span = self.span
        return TraceInfo(
            trace_id=self.trace_id,
            trace_location=TraceLocation.from_experiment_id(self.experiment_id),
            request_time=span.start_time_ns // 1_000_000,
            execution_duration=max(0, (span.end_time_ns - span.start_time_ns) // 1_000_000),
            state=TraceState.ERROR if span.status.status_code == "ERROR" else TraceState.OK,
            client_request_id=self.event_id,
            trace_metadata={**self.metadata, TRACE_SCHEMA_VERSION_KEY: str(TRACE_SCHEMA_VERSION)},
            tags=dict(self.tags),
        )


def derived_ids(experiment_id: str, event_id: str) -> tuple[int, int]:
    """(128-bit trace id, 64-bit span id) from the experiment and the event: same inputs, same trace."""
    digest = hashlib.sha256(f"litellm-mlflow/1\x00{experiment_id}\x00{event_id}".encode()).digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:24], "big") or 1
    return trace_id, span_id


def build_trace(event: LLMCallEvent, experiment_id: str) -> BuiltTrace:
    """The trace for one event; raises (ValueError/TypeError) only for events that cannot be represented."""
    otel_trace_id, span_id = derived_ids(experiment_id, event.event_id)
    start_ns = _to_ns(event.start_time)
    end_ns = max(start_ns, _to_ns(event.end_time))
    trace_id = f"{TRACE_REQUEST_ID_PREFIX}{otel_trace_id:032x}"

    attributes = _span_attributes(event, trace_id)
    events = []
    status = Status(StatusCode.OK)
    if event.is_error:
        error = event.error
        message = (error.message if error else None) or f"LiteLLM call {event.status}"
        status = Status(StatusCode.ERROR, _truncate(message, 1000))
        events.append(Event("exception", _exception_attributes(event, message), timestamp=end_ns))
    if event.ttft_ms is not None and event.completion_start_time is not None:
        events.append(Event("first_token", {"ttft_ms": event.ttft_ms}, timestamp=_to_ns(event.completion_start_time)))

    readable = ReadableSpan(
        name=f"litellm-{event.call_type or 'completion'}",
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


def _span_attributes(event: LLMCallEvent, trace_id: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        SpanAttributeKey.REQUEST_ID: trace_id,
        SpanAttributeKey.SPAN_TYPE: SPAN_TYPE_BY_CALL_TYPE.get(event.call_type or "", SpanType.LLM),
        SpanAttributeKey.INPUTS: span_inputs(event),
        SpanAttributeKey.MESSAGE_FORMAT: MESSAGE_FORMAT,
        SpanAttributeKey.MODEL: event.model,
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
        "litellm.api_base": event.api_base,
        "litellm.stream": event.stream,
        "litellm.cache_hit": event.cache_hit,
        "litellm.ttft_ms": event.ttft_ms,
        "litellm.latency_ms": event.latency_ms,
        "litellm.truncated": event.truncated or None,
        "litellm.content_logged": None if event.content_logged else False,
        "litellm.invalid_fields": list(event.invalid_fields) or None,
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
    usage = {
        TokenUsageKey.INPUT_TOKENS: event.prompt_tokens,
        TokenUsageKey.OUTPUT_TOKENS: event.completion_tokens,
        TokenUsageKey.TOTAL_TOKENS: event.total_tokens,
    }
    if all(value in (None, 0) for value in usage.values()):
        return {}
    return {key: int(value) for key, value in usage.items() if value is not None}


def llm_cost(event: LLMCallEvent) -> dict[str, float]:
    """LiteLLM's price for the call; input/output split from `cost_breakdown` when LiteLLM gives one."""
    if event.cost_usd is None:
        return {}
    cost = {CostKey.TOTAL_COST: float(event.cost_usd)}
    breakdown = event.payload.get("cost_breakdown")
    if isinstance(breakdown, Mapping):
        for key in (CostKey.INPUT_COST, CostKey.OUTPUT_COST):
            value = breakdown.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                cost[key] = float(value)
    return cost


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


def trace_tags(event: LLMCallEvent) -> dict[str, str]:
    """Searchable trace tags; the request's own tags first so the fixed names below always win."""
    tags: dict[str, str] = {}
    for raw in event.request_tags:
        key, sep, value = raw.partition(":")
        key = key.strip()
        if key:
            tags[key] = value.strip() if sep else "true"
    # Each tag is a row the server writes per trace (about half its ingest cost), so only what people filter on;
    # provider, call type and the rest are span attributes.
    fixed = {
        "model": event.model,
        "model_group": event.model_group,
        "status": event.status,
        "request_id": event.call_id,
        "user_id": event.user_id,
        "team_id": event.team_id,
        "key_alias": event.key_alias,
        "cache_hit": None if event.cache_hit is None else str(event.cache_hit).lower(),
        REPAIRED_TAG: ",".join((*event.invalid_fields, *event.repaired_fields)) or None,
    }
    tags.update({key: value for key, value in fixed.items() if value not in (None, "")})
    return {
        _truncate(key, MAX_CHARS_IN_TRACE_INFO_TAGS_KEY): _truncate(str(value), MAX_CHARS_IN_TRACE_INFO_TAGS_VALUE)
        for key, value in tags.items()
    }


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


def _to_ns(seconds: float) -> int:
    return round(seconds * 1_000_000) * 1_000


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(TRUNCATION_SUFFIX)] + TRUNCATION_SUFFIX
