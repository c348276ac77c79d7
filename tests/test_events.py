"""The event contract: what leaves the process (trimmed, redacted, sized) and what the consumer reads back."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import random
import string

import pytest

from litellm_mlflow import events
from litellm_mlflow.events import EventDecodeError

RAW_KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2
BEARER = f"Bearer {RAW_KEY}"
CALL_ID = "c4d57769-ea7e-4661-8009-17a080afc4aa"


def standard_payload(**overrides: object) -> dict:
    """A StandardLoggingPayload shaped like the ones LiteLLM 1.106 builds (captured from a real mock call)."""
    payload = {
        "id": "chatcmpl-36b9203e",
        "litellm_call_id": "c4d57769-ea7e-4661-8009-17a080afc4aa",
        "trace_id": "8c9b67ff-b680-409f-9dac-769eef5129a1",
        "session_id": "",
        "call_type": "completion",
        "cache_hit": None,
        "stream": None,
        "status": "success",
        "custom_llm_provider": "openai",
        "startTime": 1795365395.114622,
        "endTime": 1795365395.242542,
        "completionStartTime": 1795365395.242542,
        "model": "gpt-4o-mini",
        "model_map_information": {"model_map_key": "gpt-4o-mini", "model_map_value": {"input_cost_per_token": 1e-7}},
        "metadata": {
            "user_api_key_hash": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
            "user_api_key_alias": "alias",
            "user_api_key_team_id": "team-1",
            "user_api_key_user_id": "user-1",
            "user_api_key_team_alias": "Team One",
            "user_api_key_end_user_id": None,
            "usage_object": {"completion_tokens": 20, "prompt_tokens": 10, "total_tokens": 30},
            "requester_custom_headers": None,
            "used_client_oauth_token": False,
        },
        "cache_key": None,
        "response_cost": 1.35e-05,
        "total_tokens": 30,
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "request_tags": ["a"],
        "end_user": None,
        "api_base": "https://api.openai.com",
        "model_group": "gpt-4o-mini",
        "model_id": "m-1",
        "messages": [{"role": "user", "content": "hi"}],
        "response": {
            "id": "chatcmpl-36b9203e",
            "choices": [{"finish_reason": "stop", "index": 0, "message": {"content": "hello", "role": "assistant"}}],
            "usage": {
                "completion_tokens": 20,
                "prompt_tokens": 10,
                "total_tokens": 30,
                "completion_tokens_details": {"reasoning_tokens": 5},
                "prompt_tokens_details": {"cached_tokens": 2},
            },
        },
        "model_parameters": {"user": "u1", "max_tokens": 100},
        "hidden_params": {"api_base": "https://api.openai.com", "additional_headers": {"x-ratelimit": "1"}},
        "error_str": None,
        "error_information": {"error_code": "", "error_class": "", "llm_provider": "", "error_message": ""},
    }
    payload.update(overrides)
    return payload


def body_document(message: events.EncodedMessage) -> dict:
    body = message.body
    if message.compressed:
        body = gzip.decompress(base64.b64decode(body)).decode()
    return json.loads(body)


def random_text(size: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    return "".join(rng.choices(string.ascii_letters + string.digits + " ", k=size))


# ------------------------------------------------------------------------------------------------ payload policy


AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    "extra",
    [
        {"optional_params": {"aws_secret_access_key": "x", "extra": AWS_SECRET}},
        {"metadata": {"headers": {"x-aws-secret": "zzz"}, "note": AWS_SECRET}},
    ],
    ids=["secret-named-param-beside-it", "secret-named-header-elsewhere"],
)
def test_an_aws_secret_beside_a_secret_named_field_is_redacted(extra: dict) -> None:
    """The secret-named field is the only AWS context: it must still switch on the scan of the other values."""
    body = events.encode_event({"id": "call-1", "model": "m", **extra}).body
    assert AWS_SECRET not in body and events.REDACTED in body


def test_authorization_headers_and_raw_keys_are_redacted() -> None:
    payload = standard_payload()
    payload["metadata"] = {
        **payload["metadata"],
        "requester_custom_headers": {
            "Authorization": BEARER,
            "x-api-key": RAW_KEY,
            "x-litellm-api-key": RAW_KEY,
            "Proxy-Authorization": "Basic dXNlcjpwYXNz",
            "x-request-id": "req-42",
        },
        "user_api_key": RAW_KEY,
        "headers": {"authorization": BEARER, "cookie": "session=abc"},
        "requester_metadata": {"note": f"key was {RAW_KEY}", "aws_session_token": "FQoGZXIvYXdzE"},
    }
    event = body_document(events.encode_event(payload))["event"]
    text = json.dumps(event)
    assert RAW_KEY not in text
    assert "dXNlcjpwYXNz" not in text and "FQoGZXIvYXdzE" not in text and "session=abc" not in text
    headers = event["metadata"]["requester_custom_headers"]
    assert headers["Authorization"] == events.REDACTED
    assert headers["x-api-key"] == headers["x-litellm-api-key"] == events.REDACTED
    assert headers["x-request-id"] == "req-42"
    assert event["metadata"]["user_api_key"] == events.REDACTED
    assert event["metadata"]["requester_metadata"]["note"] == f"key was {events.REDACTED}"


def test_ids_counts_and_hashes_that_mention_keys_or_tokens_are_kept() -> None:
    event = body_document(events.encode_event(standard_payload()))["event"]
    metadata = event["metadata"]
    assert metadata["user_api_key_user_id"] == "user-1"
    assert metadata["user_api_key_team_id"] == "team-1"
    assert metadata["user_api_key_alias"] == "alias"
    assert metadata["user_api_key_hash"].startswith("88dc28d0")
    assert metadata["used_client_oauth_token"] is False
    usage = event["response"]["usage"]
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 5}
    assert usage["prompt_tokens_details"] == {"cached_tokens": 2}
    assert event["model_parameters"]["max_tokens"] == 100


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("Authorization", True), ("x-api-key", True), ("apiKey", True), ("OPENAI_API_KEY", True),
        ("aws_secret_access_key", True), ("access_token", True), ("x-amz-security-token", True),
        ("client_secret", True), ("password", True), ("Ocp-Apim-Subscription-Key", True), ("set-cookie", True),
        ("user_api_key_user_id", False), ("user_api_key_hash", False), ("cache_key", False),
        ("prompt_tokens", False), ("completion_tokens_details", False), ("max_tokens", False),
        ("aws_access_key_id", False), ("model", False),
    ],
)  # fmt: skip
def test_secret_key_names(name: str, secret: bool) -> None:
    redacted = events.redact({name: "value-1234567890"})
    assert (redacted[name] == events.REDACTED) is secret


def test_fields_mlflow_never_needs_are_dropped() -> None:
    event = body_document(events.encode_event(standard_payload()))["event"]
    assert "model_map_information" not in event
    assert "usage_object" not in event["metadata"]
    assert "additional_headers" not in event["hidden_params"]
    assert event["hidden_params"]["api_base"] == "https://api.openai.com"


def test_encoding_does_not_touch_the_callers_payload() -> None:
    payload = standard_payload(metadata={"requester_custom_headers": {"Authorization": BEARER}})
    before = copy.deepcopy(payload)
    events.encode_event(payload)
    assert payload == before


def test_log_content_switch_removes_prompt_and_response() -> None:
    message = events.encode_event(standard_payload(messages=[{"role": "user", "content": "my secret plan"}]),
                                  log_content=False)  # fmt: skip
    document = body_document(message)
    assert "messages" not in document["event"] and "response" not in document["event"]
    assert "my secret plan" not in message.body
    decoded = events.decode_body(message.body, message.attributes)
    assert decoded.content_logged is False
    assert decoded.messages is None and decoded.response is None
    assert decoded.total_tokens == 30


# ------------------------------------------------------------------------------------------------ encoding


def test_small_body_is_plain_json_with_schema_attribute() -> None:
    message = events.encode_event(standard_payload())
    assert not message.compressed and not message.truncated
    assert message.attributes[events.SCHEMA_ATTRIBUTE] == {"DataType": "String", "StringValue": events.SCHEMA}
    assert events.ENCODING_ATTRIBUTE not in message.attributes
    assert json.loads(message.body)["schema"] == events.SCHEMA
    assert message.size == len(message.body.encode()) + sum(
        len(k) + len(v["DataType"]) + len(v["StringValue"]) for k, v in message.attributes.items()
    )


def test_body_over_the_threshold_is_gzipped_and_marked() -> None:
    content = "word " * 3000  # ~15 KB, compresses well
    payload = standard_payload(messages=[{"role": "user", "content": content}])
    plain = events.encode_event(payload, compress_threshold=64 * 1024)
    assert not plain.compressed
    packed = events.encode_event(payload, compress_threshold=4 * 1024)
    assert packed.compressed and not packed.truncated
    assert packed.attributes[events.ENCODING_ATTRIBUTE]["StringValue"] == events.GZIP_BASE64
    assert packed.size < plain.size
    assert events.decode_body(packed.body, packed.attributes).messages[0]["content"] == content


def test_body_that_does_not_fit_even_compressed_is_truncated_with_marker_and_flag() -> None:
    content = random_text(300_000)  # incompressible enough not to fit 64 KiB gzipped
    payload = standard_payload(messages=[{"role": "user", "content": content}])
    message = events.encode_event(payload, max_bytes=64 * 1024)
    assert message.truncated and message.size <= 64 * 1024
    decoded = events.decode_body(message.body, message.attributes)
    assert decoded.truncated is True
    kept = decoded.messages[0]["content"]
    assert "[truncated by litellm-mlflow:" in kept
    assert kept.startswith(content[:1000])
    assert (decoded.event_id, decoded.model, decoded.total_tokens) == (CALL_ID, "gpt-4o-mini", 30)


def test_oversized_metadata_is_truncated_but_identity_fields_stay_whole() -> None:
    payload = standard_payload(
        litellm_call_id="c4d57769-ea7e-4661-8009-17a080afc4aa",
        metadata={
            **standard_payload()["metadata"],
            "requester_metadata": {f"k{i}": random_text(60, seed=i) for i in range(3000)},
        },
    )
    message = events.encode_event(payload, max_bytes=8 * 1024)
    assert message.truncated and message.size <= 8 * 1024
    decoded = events.decode_body(message.body, message.attributes)
    assert decoded.call_id == "c4d57769-ea7e-4661-8009-17a080afc4aa"
    assert (decoded.event_id, decoded.model, decoded.model_group) == (CALL_ID, "gpt-4o-mini", "gpt-4o-mini")
    assert (decoded.user_id, decoded.team_id) == ("user-1", "team-1")
    assert (decoded.total_tokens, decoded.cost_usd) == (30, 1.35e-05)


def test_a_two_megabyte_prompt_fits_the_sqs_limit() -> None:
    compressible = standard_payload(messages=[{"role": "user", "content": "def f(x):\n    return x\n" * 90_000}])
    message = events.encode_event(compressible)
    assert message.compressed and not message.truncated and message.size <= events.SQS_MAX_MESSAGE_BYTES
    incompressible = standard_payload(messages=[{"role": "user", "content": random_text(2_000_000)}])
    message = events.encode_event(incompressible)
    assert message.truncated and message.size <= events.SQS_MAX_MESSAGE_BYTES
    assert events.decode_body(message.body, message.attributes).truncated


@pytest.mark.parametrize("max_bytes", [0, 1023, events.SQS_MAX_MESSAGE_BYTES + 1])
def test_max_bytes_outside_what_sqs_allows_is_refused(max_bytes: int) -> None:
    with pytest.raises(ValueError, match="max_bytes must be between"):
        events.encode_event(standard_payload(), max_bytes=max_bytes)


# ------------------------------------------------------------------------------------------------ decoding


def test_decoded_event_carries_what_the_sink_needs() -> None:
    message = events.encode_event(standard_payload())
    event = events.decode_body(message.body, message.attributes)
    assert event.event_id == CALL_ID  # LiteLLM's call id, not the provider's response id
    assert event.call_id == "c4d57769-ea7e-4661-8009-17a080afc4aa"
    assert (event.model, event.provider, event.status) == ("gpt-4o-mini", "openai", "success")
    assert (event.prompt_tokens, event.completion_tokens, event.total_tokens) == (10, 20, 30)
    assert event.cost_usd == pytest.approx(1.35e-05)
    assert (event.user_id, event.team_id, event.team_alias) == ("user-1", "team-1", "Team One")
    assert event.key_alias == "alias"
    assert event.request_tags == ("a",)
    assert event.source == "litellm-mlflow" and not event.is_error


def test_lambda_event_form_attributes_are_understood() -> None:
    message = events.encode_event(standard_payload(), compress_threshold=0)
    assert message.compressed
    lambda_attributes = {
        name: {"stringValue": attr["StringValue"], "dataType": attr["DataType"], "stringListValues": []}
        for name, attr in message.attributes.items()
    }
    assert events.decode_body(message.body, lambda_attributes).model == "gpt-4o-mini"
    assert events.decode_body(message.body, None).model == "gpt-4o-mini"  # gzip recognised without attributes


def test_plain_aws_sqs_body_decodes() -> None:
    body = json.dumps(standard_payload(response_cost="0.5", prompt_tokens="12"))
    event = events.decode_body(body)
    assert event.source == "aws_sqs"
    assert event.cost_usd == 0.5 and event.prompt_tokens == 12


def test_failure_event_carries_error_information() -> None:
    payload = standard_payload(
        status="failure",
        error_str="litellm.RateLimitError: slow down",
        error_information={"error_code": "429", "error_class": "RateLimitError", "llm_provider": "openai",
                           "error_message": "litellm.RateLimitError: slow down"},
    )  # fmt: skip
    message = events.encode_event(payload)
    event = events.decode_body(message.body, message.attributes)
    assert event.is_error and event.error is not None
    assert (event.error.error_class, event.error.error_code) == ("RateLimitError", "429")


def test_values_that_are_not_numbers_are_reported_not_guessed() -> None:
    event = events.decode_body(json.dumps(standard_payload(response_cost="n/a", prompt_tokens=True)))
    assert event.cost_usd is None and event.prompt_tokens is None
    assert set(event.invalid_fields) == {"response_cost", "prompt_tokens"}


@pytest.mark.parametrize(
    ("body", "attributes", "problem"),
    [
        ("", None, "empty"),
        ("{not json", None, "not valid JSON"),
        ("[1, 2]", None, "JSON array, expected an object"),
        ('{"schema": "litellm-mlflow/99", "event": {}}', None, "unsupported schema"),
        ('{"schema": "litellm-mlflow/1", "event": "x"}', None, "no 'event' object"),
        ('{"id": "a", "model": "m"}', None, "missing required field(s): startTime, endTime"),
        ('{"id": "a", "model": "m", "startTime": "soon", "endTime": -5}', None, "must be epoch seconds"),
        ("H4sInotgzip", None, "marked gzip+base64 but is not base64"),
        ('{"id": 1}', {"content-encoding": {"StringValue": "zstd"}}, "unknown content-encoding 'zstd'"),
        ('{"__encrypted__": true, "payload": "x"}', None, "encrypted aws_sqs payload"),
    ],
)
def test_malformed_bodies_raise_one_clear_error(body: str, attributes: dict | None, problem: str) -> None:
    with pytest.raises(EventDecodeError) as caught:
        events.decode_body(body, attributes)
    assert problem in str(caught.value)


def test_user_is_the_keys_user_else_the_requests_own():
    base = {"id": "e", "model": "m", "startTime": 1.0, "endTime": 2.0}
    keyed = {**base, "metadata": {"user_api_key_user_id": "dev-7"}, "model_parameters": {"user": "alice"}}
    assert events.event_from_payload(keyed).user_id == "dev-7"
    # Master-key calls carry the proxy admin's placeholder id: the request's `user` says more.
    admin = {**base, "metadata": {"user_api_key_user_id": "default_user_id"}, "model_parameters": {"user": "alice"}}
    assert events.event_from_payload(admin).user_id == "alice"
    assert events.event_from_payload({**base, "end_user": "bob"}).user_id == "bob"


# ---------------------------------------------------------------------------------------------- unknown is not 0


def test_an_unpriced_success_has_no_cost_and_says_so() -> None:
    # LiteLLM 1.106 for a model missing from its cost map: response_cost 0.0 and no cost breakdown.
    no_entry = {"model_map_key": "claude-3-5-sonnet-20241022", "model_map_value": None}
    unpriced = events.event_from_payload(
        standard_payload(response_cost=0.0, cost_breakdown=None, model_map_information=no_entry)
    )
    assert unpriced.cost_usd is None and unpriced.cost_unknown
    free = events.event_from_payload(standard_payload(response_cost=0.0, cost_breakdown={"total_cost": 0.0}))
    assert free.cost_usd == 0.0 and not free.cost_unknown
    cached = events.event_from_payload(standard_payload(response_cost=0.0, cache_hit=True))
    assert cached.cost_usd == 0.0 and not cached.cost_unknown
    older = events.event_from_payload(standard_payload(response_cost=0.0, model_map_information=None))
    assert older.cost_usd is None and older.cost_unknown

    # A router deployment LiteLLM cannot price: a map entry of zeros and a zero breakdown, as LiteLLM 1.106 logs it.
    zeros = {"model_map_key": "openai/acme-coder-v1", "model_map_value": {"input_cost_per_token": 0, "key": "x"}}
    unpriced_routed = standard_payload(
        response_cost=0.0, cost_breakdown={"total_cost": 0.0}, model_map_information=zeros
    )
    decoded = events.decode_body(events.encode_event(unpriced_routed).body)  # the map itself is dropped on the way
    assert decoded.cost_usd is None and decoded.cost_unknown
    assert events.event_from_payload(standard_payload(response_cost=0.0)).cost_unknown is False  # priced map: free


def test_a_failure_keeps_only_the_figures_litellm_counted() -> None:
    failed = events.event_from_payload(
        standard_payload(status="failure", prompt_tokens=0, completion_tokens=0, total_tokens=0, response_cost=0.0)
    )
    assert (failed.prompt_tokens, failed.completion_tokens, failed.total_tokens, failed.cost_usd) == (None,) * 4
    assert not failed.cost_unknown
    counted = events.event_from_payload(standard_payload(status="failure", prompt_tokens=12, completion_tokens=0))
    assert counted.prompt_tokens == 12 and counted.completion_tokens is None


def test_cache_and_reasoning_tokens_survive_the_trip_without_the_usage_object() -> None:
    usage = {"prompt_tokens": 2000, "completion_tokens": 300, "cache_read_input_tokens": 1500,
             "cache_creation_input_tokens": 200, "prompt_tokens_details": {"cached_tokens": 1500},
             "completion_tokens_details": {"reasoning_tokens": 120}}  # fmt: skip
    payload = standard_payload(metadata={"usage_object": usage}, response=None)
    document = body_document(events.encode_event(payload, log_content=False))
    assert "usage_object" not in document["event"]["metadata"]
    event = events.decode_body(json.dumps(document))
    assert (event.cache_read_tokens, event.cache_creation_tokens, event.reasoning_tokens) == (1500, 200, 120)
    # LiteLLM's own aws_sqs messages keep the usage object; OpenAI-style details alone are read too.
    openai_style = events.event_from_payload(standard_payload(metadata={}))
    assert (openai_style.cache_read_tokens, openai_style.reasoning_tokens) == (2, 5)


def test_the_session_is_the_clients_never_litellms() -> None:
    assert events.client_session_id({"litellm_session_id": "task-1", "metadata": {"session_id": "x"}}) == "task-1"
    assert events.client_session_id({"litellm_session_id": None, "metadata": {"session_id": "chat-7"}}) == "chat-7"
    assert events.client_session_id({"litellm_trace_id": "per-call", "metadata": {}}) is None
    minted = {"litellm_session_id": "uuid-made-by-proxy", "metadata": {"litellm_session_id_generated": True}}
    assert events.client_session_id(minted) is None
    assert events.client_session_id(None) is None

    generated_trace = standard_payload(trace_id="8c9b67ff-generated", session_id="")
    assert events.event_from_payload(generated_trace).session_id is None
    ours = events.event_from_payload(standard_payload(client_session_id="task-1", session_id="other"))
    assert ours.session_id == "task-1"
    said_none = events.event_from_payload(standard_payload(client_session_id=None, session_id="minted"))
    assert said_none.session_id is None
    from_aws_sqs = standard_payload(metadata={"requester_metadata": {"session_id": "chat-7"}})
    assert events.event_from_payload(from_aws_sqs).session_id == "chat-7"


def test_org_and_team_fields() -> None:
    metadata = {"user_api_key_org_id": "org-1", "user_api_key_org_alias": "Research",
                "user_api_key_team_id": "team-1", "user_api_key_team_alias": "Team One"}  # fmt: skip
    event = events.event_from_payload(standard_payload(metadata=metadata))
    assert (event.org_id, event.org_alias) == ("org-1", "Research")
    assert (event.team_id, event.team_alias) == ("team-1", "Team One")
