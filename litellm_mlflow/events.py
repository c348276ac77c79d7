"""The event contract between the LiteLLM callback and the consumer.

Input: LiteLLM's StandardLoggingPayload (`kwargs["standard_logging_object"]`). On the wire: an SQS message body
`{"schema": "litellm-mlflow/1", "event": {...}}`, gzip+base64 when large, content truncated (with a marker and
`truncated: true`) only when even the compressed body does not fit. Out of the consumer's decoder: an `LLMCallEvent`,
the normalised record the MLflow sink writes. The decoder also takes the plain JSON bodies of LiteLLM's own
`aws_sqs` callback.

Pure Python, no third-party imports: the callback, the Lambda and the tests all load it.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMA = "litellm-mlflow/1"
ENCODING_ATTRIBUTE = "content-encoding"
SCHEMA_ATTRIBUTE = "schema"
GZIP_BASE64 = "gzip+base64"

SQS_MAX_MESSAGE_BYTES = 1_048_576
SQS_MIN_MESSAGE_BYTES = 1_024
DEFAULT_MAX_MESSAGE_BYTES = SQS_MAX_MESSAGE_BYTES
DEFAULT_COMPRESS_THRESHOLD = 64 * 1024

REDACTED = "[REDACTED]"
TRUNCATION_MARKER = "...[truncated by litellm-mlflow: {removed} of {total} characters removed]"

REQUIRED_FIELDS = ("id", "model", "startTime", "endTime")
# LiteLLM's user id for calls made with the proxy's master key (litellm.constants.LITELLM_PROXY_ADMIN_NAME).
PROXY_ADMIN_USER_ID = "default_user_id"

# Never needed by MLflow and most of an event's size (model_map_information alone is ~15 KB).
DROPPED_TOP_LEVEL_KEYS = frozenset({"model_map_information", "autorouter_savings_estimate"})
DROPPED_METADATA_KEYS = frozenset({"usage_object", "user_api_key_auth_metadata"})
DROPPED_HIDDEN_PARAM_KEYS = frozenset({"usage_object", "additional_headers"})
CONTENT_KEYS = ("messages", "response")
# What the callback adds beside LiteLLM's payload: the session id the client supplied (None when it gave none), and
# the cache/reasoning token counts of LiteLLM's usage object (which itself is dropped: its other fields repeat).
CLIENT_SESSION_FIELD = "client_session_id"
TOKEN_DETAILS_FIELD = "token_details"
CACHE_READ_TOKENS = "cache_read_input_tokens"
CACHE_CREATION_TOKENS = "cache_creation_input_tokens"
REASONING_TOKENS = "reasoning_tokens"
# LiteLLM's proxy marks a session id it minted itself (`general_settings.missing_session_id: generate`).
SESSION_ID_GENERATED_KEY = "litellm_session_id_generated"

# Key names are split into words ("x-api-key", "apiKey", "user_api_key_hash" -> words) and judged by their words, so
# "user_api_key_user_id", "prompt_tokens_details" or "cache_key" stay while "api_key", "Authorization",
# "x-litellm-api-key" or "aws_session_token" go.
_KEY_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SECRET_WORDS = frozenset(
    {"authorization", "password", "passwd", "passphrase", "secret", "cookie", "credential", "credentials",
     "apikey", "privatekey"}
)  # fmt: skip
_SECRET_LAST_WORDS = frozenset({"token", "jwt"})
_KEY_QUALIFIERS = frozenset({"api", "access", "secret", "private", "signing", "encryption", "master", "subscription"})
_SECRET_VALUE = re.compile(
    r"(?:\bBearer\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bAIza[0-9A-Za-z_-]{30,}"
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,})"
)


class EventDecodeError(ValueError):
    """A message body that cannot become an event: not JSON, not an object, or missing what an event needs."""


@dataclass(frozen=True)
class EncodedMessage:
    """One SQS message ready to send: `body` and `attributes` go straight into SendMessage(Batch)."""

    body: str
    attributes: dict[str, dict[str, str]]
    compressed: bool
    truncated: bool
    size: int


@dataclass(frozen=True)
class ErrorInfo:
    error_class: str | None
    error_code: str | None
    message: str | None
    provider: str | None = None
    traceback: str | None = None


@dataclass(frozen=True)
class LLMCallEvent:
    """One LiteLLM call, normalised: what the MLflow sink writes as a trace and metric points.

    Times are epoch seconds. Token counts and cost are numbers (numeric strings converted); fields whose values
    could not be read as numbers are left as None and named in `invalid_fields`. None means "not known", never 0: a
    success LiteLLM could not price has `cost_usd` None and `cost_unknown` True; a failure keeps only the token and
    cost figures LiteLLM actually counted (LiteLLM reports 0 for what it never saw). `session_id` is the session the
    client supplied, never an id LiteLLM made up for the call.
    """

    event_id: str
    model: str
    start_time: float
    end_time: float
    status: str = "success"
    call_id: str | None = None
    litellm_trace_id: str | None = None
    session_id: str | None = None
    call_type: str | None = None
    model_group: str | None = None
    model_id: str | None = None
    provider: str | None = None
    api_base: str | None = None
    completion_start_time: float | None = None
    stream: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: float | None = None
    cache_hit: bool | None = None
    cost_unknown: bool = False
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None
    reasoning_tokens: int | None = None
    user_id: str | None = None
    end_user: str | None = None
    team_id: str | None = None
    team_alias: str | None = None
    key_alias: str | None = None
    org_id: str | None = None
    org_alias: str | None = None
    request_tags: tuple[str, ...] = ()
    messages: Any = None
    response: Any = None
    model_parameters: dict[str, Any] = field(default_factory=dict)
    error: ErrorInfo | None = None
    truncated: bool = False
    content_logged: bool = True
    source: str = "litellm-mlflow"
    invalid_fields: tuple[str, ...] = ()
    payload: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_error(self) -> bool:
        return self.status != "success"

    @property
    def latency_ms(self) -> float:
        return max(0.0, (self.end_time - self.start_time) * 1000.0)

    @property
    def ttft_ms(self) -> float | None:
        """Time to first token; only meaningful for streamed calls (LiteLLM sets it to endTime otherwise)."""
        if not self.stream or self.completion_start_time is None:
            return None
        return max(0.0, (self.completion_start_time - self.start_time) * 1000.0)


# ---------------------------------------------------------------------------------------------- payload policy


def redact(value: Any) -> Any:
    """Copy `value` with secret-named keys replaced and key-looking strings (sk-..., Bearer ..., AKIA...) masked."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            key_text = str(key)
            if isinstance(item, (str, bytes, Mapping, list, tuple)) and _is_secret_key(key_text):
                out[key_text] = REDACTED
            else:
                out[key_text] = redact(item)
        return out
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value) if _might_hold_secret(value) else value
    return value


def _is_secret_key(name: str) -> bool:
    """True for names of credentials; counts, hashes, aliases and ids that merely mention a key or token are kept."""
    words = [word for word in _KEY_WORD_SPLIT.split(_CAMEL_BOUNDARY.sub("_", name).lower()) if word]
    if not words:
        return False
    if any(word in _SECRET_WORDS for word in words) or words[-1] in _SECRET_LAST_WORDS:
        return True
    return words[-1] == "key" and len(words) > 1 and words[-2] in _KEY_QUALIFIERS


def _might_hold_secret(text: str) -> bool:
    # Cheap pre-check so megabytes of prompt text are scanned by the regex only when a marker is present.
    return "sk-" in text or "Bearer" in text or "AKIA" in text or "AIza" in text or "xox" in text


def prepare_payload(payload: Mapping[str, Any], *, log_content: bool = True) -> dict[str, Any]:
    """What leaves the process: the payload minus what MLflow never needs, secrets redacted, content optional."""
    trimmed = {key: value for key, value in payload.items() if key not in DROPPED_TOP_LEVEL_KEYS}
    metadata = trimmed.get("metadata")
    details = token_details(payload)
    if details:
        trimmed[TOKEN_DETAILS_FIELD] = details
    if isinstance(metadata, Mapping):
        trimmed["metadata"] = {k: v for k, v in metadata.items() if k not in DROPPED_METADATA_KEYS}
    hidden = trimmed.get("hidden_params")
    if isinstance(hidden, Mapping):
        trimmed["hidden_params"] = {k: v for k, v in hidden.items() if k not in DROPPED_HIDDEN_PARAM_KEYS}
    if not log_content:
        for key in CONTENT_KEYS:
            trimmed.pop(key, None)
        trimmed["content_logged"] = False
    return redact(trimmed)


# ---------------------------------------------------------------------------------------------- encoding


def encode_event(
    payload: Mapping[str, Any],
    *,
    log_content: bool = True,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD,
) -> EncodedMessage:
    """Turn a StandardLoggingPayload into one SQS message that always fits `max_bytes`.

    Plain JSON up to `compress_threshold`; gzip+base64 above it; message and response contents truncated (with a
    marker and the `truncated` flag) only if the compressed body still does not fit. The event is never dropped.
    """
    if not SQS_MIN_MESSAGE_BYTES <= max_bytes <= SQS_MAX_MESSAGE_BYTES:
        raise ValueError(
            f"max_bytes must be between {SQS_MIN_MESSAGE_BYTES} and {SQS_MAX_MESSAGE_BYTES} (the queue's "
            f"MaximumMessageSize), got {max_bytes}"
        )
    event = prepare_payload(payload, log_content=log_content)
    message = _encode(event, max_bytes, compress_threshold)
    if message.size <= max_bytes:
        return message
    return _encode_truncated(event, max_bytes, compress_threshold)


def _encode(event: dict[str, Any], max_bytes: int, compress_threshold: int) -> EncodedMessage:
    text = json.dumps({"schema": SCHEMA, "event": event}, default=str, separators=(",", ":"), ensure_ascii=False)
    raw = text.encode("utf-8")
    truncated = bool(event.get("truncated"))
    attributes = {SCHEMA_ATTRIBUTE: {"DataType": "String", "StringValue": SCHEMA}}
    if len(raw) <= compress_threshold and len(raw) + _attributes_size(attributes) <= max_bytes:
        return EncodedMessage(text, attributes, False, truncated, len(raw) + _attributes_size(attributes))
    body = base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")
    attributes[ENCODING_ATTRIBUTE] = {"DataType": "String", "StringValue": GZIP_BASE64}
    return EncodedMessage(body, attributes, True, truncated, len(body) + _attributes_size(attributes))


def _attributes_size(attributes: Mapping[str, Mapping[str, str]]) -> int:
    # SQS counts each attribute's name, data type and value against the message size.
    return sum(len(name) + len(attr["DataType"]) + len(attr["StringValue"]) for name, attr in attributes.items())


# Identity fields the consumer keys on (trace ids, tags) stay whole whatever else is shortened.
_NEVER_TRUNCATED = frozenset(
    {"id", "model", "truncated", "litellm_call_id", "trace_id", "session_id", "status", "call_type", "model_group",
     "model_id", "custom_llm_provider", CLIENT_SESSION_FIELD}
)  # fmt: skip


_NUMBERS_KEPT = ("completionStartTime", "prompt_tokens", "completion_tokens", "total_tokens", "response_cost",
                 "stream", "cache_hit", "cost_breakdown", TOKEN_DETAILS_FIELD)  # fmt: skip


def _encode_truncated(event: dict[str, Any], max_bytes: int, compress_threshold: int) -> EncodedMessage:
    """Shrink the longest strings (content first, then anything) until the compressed body fits."""
    for keys in (CONTENT_KEYS, None):
        longest = _longest_string(event, keys)
        cap = longest
        while cap > 64:
            cap = max(64, cap // 2)
            candidate = dict(event)
            candidate["truncated"] = True
            for key in keys or list(candidate):
                if key in candidate and key not in _NEVER_TRUNCATED:
                    candidate[key] = _cap_strings(candidate[key], cap)
            message = _encode(candidate, max_bytes, compress_threshold)
            if message.size <= max_bytes:
                return message
        if keys is not None:
            event = {**event, **{k: _cap_strings(event[k], 64) for k in CONTENT_KEYS if k in event}}
    return _encode(_minimal_event(event), max_bytes, compress_threshold)


def _minimal_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """Last resort: identity, numbers and short metadata (user, team, key alias) only; still a complete event."""
    kept = {key: event[key] for key in (*REQUIRED_FIELDS, *_NEVER_TRUNCATED, *_NUMBERS_KEPT) if key in event}
    metadata = event.get("metadata")
    if isinstance(metadata, Mapping):
        kept["metadata"] = {k: v for k, v in metadata.items() if isinstance(v, str) and len(v) <= 256}
    kept["truncated"] = True
    return kept


def _longest_string(value: Any, keys: tuple[str, ...] | None) -> int:
    if keys is not None and isinstance(value, Mapping):
        return max((_longest_string(value[k], None) for k in keys if k in value), default=0)
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Mapping):
        return max((_longest_string(v, None) for v in value.values()), default=0)
    if isinstance(value, list):
        return max((_longest_string(v, None) for v in value), default=0)
    return 0


def _cap_strings(value: Any, cap: int) -> Any:
    if isinstance(value, str):
        if len(value) <= cap:
            return value
        return value[:cap] + TRUNCATION_MARKER.format(removed=len(value) - cap, total=len(value))
    if isinstance(value, Mapping):
        return {k: _cap_strings(v, cap) for k, v in value.items()}
    if isinstance(value, list):
        return [_cap_strings(v, cap) for v in value]
    return value


# ---------------------------------------------------------------------------------------------- decoding


def decode_body(body: str | bytes, attributes: Mapping[str, Any] | None = None) -> LLMCallEvent:
    """Turn one SQS message body (ours, plain or gzip, or LiteLLM's own `aws_sqs`) into an `LLMCallEvent`.

    `attributes` may be in SendMessage form (`StringValue`) or Lambda-event form (`stringValue`); a gzip body is
    also recognised without them. Raises `EventDecodeError` naming what is wrong.
    """
    document = _load_document(body, _attribute(attributes, ENCODING_ATTRIBUTE))
    if not isinstance(document, dict):
        raise EventDecodeError(f"message body is JSON {type(document).__name__}, expected an object")
    if "schema" in document:
        if document["schema"] != SCHEMA:
            raise EventDecodeError(f"unsupported schema {document['schema']!r}; this consumer reads {SCHEMA!r}")
        payload, source = document.get("event"), "litellm-mlflow"
        if not isinstance(payload, dict):
            raise EventDecodeError("message body has no 'event' object")
    elif document.get("__encrypted__"):
        raise EventDecodeError("encrypted aws_sqs payload: turn off the aws_sqs callback's encryption for this queue")
    else:
        payload, source = document, "aws_sqs"
    return event_from_payload(payload, source=source)


def _attribute(attributes: Mapping[str, Any] | None, name: str) -> str | None:
    if not attributes or name not in attributes:
        return None
    attr = attributes[name]
    if isinstance(attr, Mapping):
        return attr.get("StringValue") or attr.get("stringValue")
    return str(attr)


def _load_document(body: str | bytes, encoding: str | None) -> Any:
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(body, str) or not body.strip():
        raise EventDecodeError("message body is empty")
    text = body
    if encoding == GZIP_BASE64 or (encoding is None and body.startswith("H4sI")):
        try:
            text = gzip.decompress(base64.b64decode(body, validate=True)).decode("utf-8")
        except (binascii.Error, OSError, EOFError, UnicodeDecodeError) as exc:
            raise EventDecodeError(f"message body is marked gzip+base64 but does not decode: {exc}") from exc
    elif encoding not in (None, ""):
        raise EventDecodeError(f"unknown content-encoding {encoding!r}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventDecodeError(f"message body is not valid JSON: {exc.msg} at position {exc.pos}") from exc


def event_from_payload(payload: Mapping[str, Any], *, source: str = "litellm-mlflow") -> LLMCallEvent:
    """Normalise a (possibly trimmed) StandardLoggingPayload; raises `EventDecodeError` if it is not one."""
    missing = [key for key in REQUIRED_FIELDS if payload.get(key) in (None, "")]
    if missing:
        raise EventDecodeError(f"event is missing required field(s): {', '.join(missing)}")
    invalid: list[str] = []
    start_time = _number(payload, "startTime", invalid)
    end_time = _number(payload, "endTime", invalid)
    if start_time is None or end_time is None:
        raise EventDecodeError(f"event field(s) {', '.join(invalid)} must be epoch seconds (a number)")
    metadata = _mapping(payload.get("metadata"))
    model_parameters = _mapping(payload.get("model_parameters"))
    status = str(payload.get("status") or ("failure" if payload.get("error_str") else "success"))
    prompt_tokens = _number(payload, "prompt_tokens", invalid, integer=True)
    completion_tokens = _number(payload, "completion_tokens", invalid, integer=True)
    total_tokens = _number(payload, "total_tokens", invalid, integer=True)
    if total_tokens is None and prompt_tokens is not None and completion_tokens is not None:
        total_tokens = prompt_tokens + completion_tokens
    cost_usd = _number(payload, "response_cost", invalid)
    cost_unknown = False
    if status != "success":
        # LiteLLM logs 0 tokens and 0 cost for a call it never got an answer to: that 0 means "nothing counted".
        prompt_tokens, completion_tokens, total_tokens, cost_usd = (
            value or None for value in (prompt_tokens, completion_tokens, total_tokens, cost_usd)
        )
    elif cost_usd is None or (cost_usd == 0 and _unpriced(payload)):
        cost_usd, cost_unknown = None, True
    details = token_details(payload)
    return LLMCallEvent(
        event_id=str(payload["id"]),
        model=str(payload["model"]),
        start_time=start_time,
        end_time=end_time,
        status=status,
        call_id=_text(payload.get("litellm_call_id")),
        litellm_trace_id=_text(payload.get("trace_id")),
        session_id=_session_id(payload, metadata),
        call_type=_text(payload.get("call_type")),
        model_group=_text(payload.get("model_group")),
        model_id=_text(payload.get("model_id")),
        provider=_text(payload.get("custom_llm_provider")),
        api_base=_text(payload.get("api_base")),
        completion_start_time=_number(payload, "completionStartTime", invalid),
        stream=bool(payload.get("stream")),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=total_tokens,
        cost_usd=cost_usd,
        cache_hit=None if payload.get("cache_hit") is None else bool(payload.get("cache_hit")),
        cost_unknown=cost_unknown,
        cache_read_tokens=details.get(CACHE_READ_TOKENS),
        cache_creation_tokens=details.get(CACHE_CREATION_TOKENS),
        reasoning_tokens=details.get(REASONING_TOKENS),
        user_id=_key_user(metadata) or _text(model_parameters.get("user")) or _text(payload.get("end_user")),
        end_user=_text(payload.get("end_user")) or _text(metadata.get("user_api_key_end_user_id")),
        team_id=_text(metadata.get("user_api_key_team_id")) or _text(metadata.get("team_id")),
        team_alias=_text(metadata.get("user_api_key_team_alias")) or _text(metadata.get("team_alias")),
        key_alias=_text(metadata.get("user_api_key_alias")),
        org_id=_text(metadata.get("user_api_key_org_id")),
        org_alias=_text(metadata.get("user_api_key_org_alias")),
        request_tags=tuple(str(tag) for tag in payload.get("request_tags") or () if tag is not None),
        messages=payload.get("messages"),
        response=payload.get("response"),
        model_parameters=model_parameters,
        error=_error(payload) if status != "success" else None,
        truncated=bool(payload.get("truncated")),
        content_logged=payload.get("content_logged", True) is not False,
        source=source,
        invalid_fields=tuple(invalid),
        payload=dict(payload),
    )


def client_session_id(litellm_params: Mapping[str, Any] | None) -> str | None:
    """The session id the client supplied, read where LiteLLM puts it (`litellm_params` of a logging callback).

    LiteLLM's proxy moves every session form it understands into `litellm_session_id`: the body field, the
    `x-litellm-session-id` / `x-<vendor>-session-id` headers, Anthropic's `metadata.user_id` session, W3C baggage;
    the SDK copies `metadata.session_id` there too. The payload's own `trace_id` is not used: without a session it is
    a fresh id per call. None when the client gave none, or the proxy minted one (`missing_session_id: generate`).
    """
    if not isinstance(litellm_params, Mapping):
        return None
    metadata = litellm_params.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    if metadata.get(SESSION_ID_GENERATED_KEY):
        return None
    return _text(litellm_params.get("litellm_session_id")) or _text(metadata.get("session_id"))


def _session_id(payload: Mapping[str, Any], metadata: Mapping[str, Any]) -> str | None:
    """Our callback's `client_session_id` when it is there (None included); otherwise (LiteLLM's own `aws_sqs`
    messages) the payload's `session_id` (LiteLLM fills it only from the client's id) or the client's metadata."""
    if CLIENT_SESSION_FIELD in payload:
        return _text(payload.get(CLIENT_SESSION_FIELD))
    requester = _mapping(metadata.get("requester_metadata"))
    return _text(payload.get("session_id")) or _text(requester.get("session_id"))


def _unpriced(payload: Mapping[str, Any]) -> bool:
    """A zero cost LiteLLM reports because it found no price (as opposed to a free call or a cache hit)."""
    if payload.get("cache_hit"):
        return False
    if payload.get("response_cost_failure_debug_info"):
        return True
    if "cost_breakdown" in payload:
        # LiteLLM writes a breakdown whenever it priced the call, even at 0; None means it could not.
        return not payload.get("cost_breakdown")
    # Older payloads have no breakdown: a call that used tokens and cost nothing had no price.
    return bool(payload.get("total_tokens"))


def token_details(payload: Mapping[str, Any]) -> dict[str, int]:
    """Cache-read, cache-creation and reasoning token counts, from wherever this payload has them: our own
    `token_details`, LiteLLM's usage object (metadata or hidden params), or the response's `usage`."""
    ours = payload.get(TOKEN_DETAILS_FIELD)
    if isinstance(ours, Mapping):
        return {key: value for key, value in ours.items() if _is_count(value)}
    metadata = _mapping(payload.get("metadata"))
    response = payload.get("response")
    for usage in (
        metadata.get("usage_object"),
        _mapping(payload.get("hidden_params")).get("usage_object"),
        response.get("usage") if isinstance(response, Mapping) else None,
    ):
        if isinstance(usage, Mapping) and usage:
            return _usage_details(usage)
    return {}


def _usage_details(usage: Mapping[str, Any]) -> dict[str, int]:
    prompt = _mapping(usage.get("prompt_tokens_details"))
    completion = _mapping(usage.get("completion_tokens_details"))
    candidates = {
        CACHE_READ_TOKENS: (usage.get(CACHE_READ_TOKENS), prompt.get("cached_tokens")),
        CACHE_CREATION_TOKENS: (usage.get(CACHE_CREATION_TOKENS), prompt.get("cache_creation_tokens")),
        REASONING_TOKENS: (completion.get(REASONING_TOKENS), usage.get(REASONING_TOKENS)),
    }
    details = {}
    for key, values in candidates.items():
        value = next((value for value in values if _is_count(value)), None)
        if value is not None:
            details[key] = int(value)
    return details


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _key_user(metadata: Mapping[str, Any]) -> str | None:
    """The virtual key's user, unless it is the proxy admin's placeholder (every master-key call carries it, which
    would hide the request's own `user`)."""
    user = _text(metadata.get("user_api_key_user_id"))
    return None if user == PROXY_ADMIN_USER_ID else user


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text or None


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _number(payload: Mapping[str, Any], key: str, invalid: list[str], integer: bool = False) -> Any:
    """A number, or a numeric string converted; anything else is None and `key` is recorded as invalid."""
    value = payload.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        invalid.append(key)
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        invalid.append(key)
        return None
    if not math.isfinite(number):
        invalid.append(key)
        return None
    return int(number) if integer else number


def _error(payload: Mapping[str, Any]) -> ErrorInfo:
    info = _mapping(payload.get("error_information"))
    return ErrorInfo(
        error_class=_text(info.get("error_class")),
        error_code=_text(info.get("error_code")),
        message=_text(info.get("error_message")) or _text(payload.get("error_str")),
        provider=_text(info.get("llm_provider")),
        traceback=_text(info.get("traceback")),
    )
