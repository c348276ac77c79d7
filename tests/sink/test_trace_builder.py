"""LLMCallEvent -> MLflow span/trace: ids, attributes the UI reads, tags, metadata, errors, streams."""

from __future__ import annotations

import json

import pytest
from mlflow.entities import SpanType

from litellm_mlflow.events import event_from_payload
from litellm_mlflow.sink.otlp_writer import to_otel_proto
from litellm_mlflow.sink.trace_builder import build_trace, derived_ids, trace_tags

START = 1_790_000_000.25


def payload(**overrides) -> dict:
    base = {
        "id": "chatcmpl-1",
        "litellm_call_id": "call-1",
        "model": "gpt-4o-mini-2024-07-18",
        "model_group": "gpt-4o-mini",
        "model_id": "deployment-7",
        "api_base": "https://api.openai.com/v1",
        "call_type": "completion",
        "startTime": START,
        "endTime": START + 1.5,
        "completionStartTime": START + 1.5,
        "status": "success",
        "custom_llm_provider": "openai",
        "prompt_tokens": "10",
        "completion_tokens": 20,
        "total_tokens": 30,
        "response_cost": 0.00135,
        "cost_breakdown": {"input_cost": 0.00015, "output_cost": 0.0012, "total_cost": 0.00135},
        "request_tags": ["team:search", "canary"],
        "session_id": "",
        "client_session_id": "sess-9",
        "metadata": {
            "user_api_key_user_id": "alice",
            "user_api_key_team_id": "t-1",
            "user_api_key_alias": "ci-key",
            "user_api_key_team_alias": "search-team",
            "user_api_key_org_id": "org-1",
        },
        "model_parameters": {"temperature": 0.2, "user": "alice"},
        "messages": [{"role": "user", "content": "hi"}],
        "response": {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}]},
    }
    base.update(overrides)
    return base


def test_ids_are_derived_from_event_and_experiment():
    first = build_trace(event_from_payload(payload()), "7")
    again = build_trace(event_from_payload(payload()), "7")
    elsewhere = build_trace(event_from_payload(payload()), "8")
    # Identity is LiteLLM's call id: a provider repeating its response id does not merge two calls.
    other_event = build_trace(event_from_payload(payload(litellm_call_id="call-2")), "7")

    assert first.trace_id == again.trace_id and first.span.span_id == again.span.span_id
    assert first.trace_id != elsewhere.trace_id
    assert first.trace_id != other_event.trace_id
    assert first.trace_id == f"tr-{derived_ids('7', 'call-1')[0]:032x}"
    assert first.span.trace_id == first.trace_id


def test_span_has_what_the_mlflow_chat_view_reads():
    span = build_trace(event_from_payload(payload()), "7").span

    assert span.span_type == SpanType.CHAT_MODEL
    assert span.inputs == {"model": "gpt-4o-mini-2024-07-18", "messages": [{"role": "user", "content": "hi"}],
                           "temperature": 0.2, "user": "alice"}  # fmt: skip
    assert span.outputs["choices"][0]["message"]["content"] == "hello"
    assert span.attributes["mlflow.chat.tokenUsage"] == {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30}
    assert span.attributes["mlflow.llm.cost"] == {"input_cost": 0.00015, "output_cost": 0.0012, "total_cost": 0.00135}
    assert span.name == "gpt-4o-mini"  # the model group: what clients call
    assert span.attributes["mlflow.llm.model"] == "gpt-4o-mini"
    assert span.attributes["litellm.deployment"] == "gpt-4o-mini-2024-07-18"
    assert span.attributes["litellm.model_id"] == "deployment-7"
    assert span.attributes["litellm.api_base"] == "https://api.openai.com/v1"
    assert span.attributes["mlflow.llm.provider"] == "openai"
    assert span.attributes["litellm.latency_ms"] == 1500.0
    assert span.attributes["mlflow.message.format"] == "openai"
    assert span.start_time_ns == 1_790_000_000_250_000_000
    assert span.end_time_ns - span.start_time_ns == 1_500_000_000
    assert span.status.status_code.value == "OK"
    assert "litellm.ttft_ms" not in span.attributes  # not a stream


def test_tags_are_only_what_people_filter_on_and_metadata_is_mlflows():
    built = build_trace(event_from_payload(payload(request_tags=["team:search", "canary", "model:spoofed"])), "7")

    assert built.tags == {
        "mlflow.traceName": "gpt-4o-mini",
        "team_id": "t-1",
        "team_alias": "search-team",
        "key_alias": "ci-key",
        "org_id": "org-1",
    }
    attributes = built.span.attributes
    assert attributes["litellm.request_tags"] == ["team:search", "canary", "model:spoofed"]
    assert attributes["litellm.call_id"] == "call-1"
    assert built.metadata == {"mlflow.trace.user": "alice", "mlflow.trace.session": "sess-9"}
    info = built.trace_info()
    assert info.client_request_id == "call-1"
    assert info.request_time == 1_790_000_000_250 and info.execution_duration == 1500
    assert info.tags["mlflow.traceName"] == "gpt-4o-mini" and info.trace_metadata["mlflow.trace.session"] == "sess-9"


def test_a_call_without_a_group_or_session_is_named_by_its_model_and_has_no_session():
    built = build_trace(event_from_payload(payload(model_group=None, client_session_id=None, trace_id="per-call")), "7")
    assert built.tags["mlflow.traceName"] == "gpt-4o-mini-2024-07-18"
    assert "mlflow.trace.session" not in built.metadata
    assert built.span.attributes["litellm.trace_id"] == "per-call"


def test_long_tag_values_are_truncated_not_dropped():
    tags = trace_tags(event_from_payload(payload(metadata={"user_api_key_team_alias": "x" * 5000})))
    assert len(tags["team_alias"]) == 4096 and tags["team_alias"].endswith("...")


def test_unpriced_call_has_no_cost_and_is_marked_unknown():
    span = build_trace(event_from_payload(payload(response_cost=0.0, cost_breakdown=None)), "7").span
    assert "mlflow.llm.cost" not in span.attributes
    assert span.attributes["litellm.cost_unknown"] is True
    assert span.attributes["mlflow.chat.tokenUsage"]["input_tokens"] == 10
    priced = build_trace(event_from_payload(payload()), "7").span
    assert "litellm.cost_unknown" not in priced.attributes


def test_cache_and_reasoning_tokens_and_costs_in_mlflows_keys():
    usage = {"prompt_tokens": 2000, "completion_tokens": 300, "total_tokens": 2300, "cache_read_input_tokens": 1500,
             "cache_creation_input_tokens": 200, "completion_tokens_details": {"reasoning_tokens": 120}}  # fmt: skip
    breakdown = {"input_cost": 0.0021, "output_cost": 0.0045, "total_cost": 0.0066, "cache_read_cost": 0.00045,
                 "cache_creation_cost": 0.00075, "reasoning_cost": 0.0018, "tool_usage_cost": 0.0}  # fmt: skip
    event = event_from_payload(
        payload(prompt_tokens=2000, completion_tokens=300, total_tokens=2300, response_cost=0.0066,
                cost_breakdown=breakdown, metadata={"usage_object": usage})
    )  # fmt: skip
    span = build_trace(event, "7").span
    assert span.attributes["mlflow.chat.tokenUsage"] == {
        "input_tokens": 2000, "output_tokens": 300, "total_tokens": 2300,
        "cache_read_input_tokens": 1500, "cache_creation_input_tokens": 200,
    }  # fmt: skip
    assert span.attributes["mlflow.llm.cost"] == {"input_cost": 0.0021, "output_cost": 0.0045, "total_cost": 0.0066}
    assert span.attributes["litellm.cache_read_cost"] == 0.00045
    assert span.attributes["litellm.cache_creation_cost"] == 0.00075
    assert span.attributes["litellm.reasoning_cost"] == 0.0018
    assert span.attributes["litellm.reasoning_tokens"] == 120
    assert "litellm.tool_usage_cost" not in span.attributes


def test_input_cost_that_leaves_cache_out_gets_it_added():
    breakdown = {"input_cost": 0.0009, "output_cost": 0.0045, "total_cost": 0.0066, "cache_read_cost": 0.00045,
                 "cache_creation_cost": 0.00075}  # fmt: skip
    span = build_trace(event_from_payload(payload(response_cost=0.0066, cost_breakdown=breakdown)), "7").span
    cost = span.attributes["mlflow.llm.cost"]
    assert cost["input_cost"] + cost["output_cost"] == pytest.approx(cost["total_cost"])


def test_failure_is_an_error_span_with_an_exception_event():
    failed = payload(
        status="failure",
        response={},
        prompt_tokens=0,
        completion_tokens=0,
        total_tokens=0,
        response_cost=0.0,
        cost_breakdown=None,
        error_str="litellm.RateLimitError: slow down",
        error_information={"error_class": "RateLimitError", "error_code": "429", "error_message": "slow down",
                           "llm_provider": "openai", "traceback": "Traceback ..."},
    )  # fmt: skip
    span = build_trace(event_from_payload(failed), "7").span

    # LiteLLM reports 0 tokens and 0 cost for a call that got no answer: not figures, so nothing is written.
    assert "mlflow.chat.tokenUsage" not in span.attributes and "mlflow.llm.cost" not in span.attributes
    assert span.status.status_code.value == "ERROR"
    assert span.status.description == "slow down"
    assert span.outputs is None
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes == {
        "exception.type": "RateLimitError",
        "exception.message": "slow down",
        "exception.code": "429",
        "exception.provider": "openai",
        "exception.stacktrace": "Traceback ...",
    }
    assert build_trace(event_from_payload(failed), "7").trace_info().state.value == "ERROR"


def test_stream_records_time_to_first_token():
    streamed = payload(stream=True, completionStartTime=START + 0.2)
    span = build_trace(event_from_payload(streamed), "7").span
    assert span.attributes["litellm.ttft_ms"] == 200.0  # 0.1 ms precision, not 15 decimals
    (first_token,) = [event for event in span.events if event.name == "first_token"]
    assert first_token.timestamp == span.start_time_ns + 200_000_000


def test_otlp_proto_carries_tags_and_user_session_for_the_server():
    proto = to_otel_proto(build_trace(event_from_payload(payload()), "7"))
    keys = {attribute.key for attribute in proto.attributes}
    assert {"mlflow.traceTag.mlflow.traceName", "mlflow.traceTag.team_id", "user.id", "session.id"} <= keys
    assert proto.start_time_unix_nano == 1_790_000_000_250_000_000
    assert len(proto.trace_id) == 16 and len(proto.span_id) == 8


def test_trace_info_carries_trace_level_usage_and_cost_for_the_sdk_path():
    info = build_trace(event_from_payload(payload()), "7").trace_info()
    assert info.token_usage == {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30}
    assert json.loads(info.trace_metadata["mlflow.trace.cost"])["total_cost"] == 0.00135
    unpriced = build_trace(event_from_payload(payload(response_cost=0.0, cost_breakdown=None)), "7").trace_info()
    assert "mlflow.trace.cost" not in unpriced.trace_metadata
