"""The event contract between the LiteLLM callback and the consumer.

Input: LiteLLM's StandardLoggingPayload (`kwargs["standard_logging_object"]`). On the wire: an SQS message body
`{"schema": "litellm-mlflow/1", "event": {...}}`, gzip+base64 when large, content truncated (with a marker and
`truncated: true`) only when even the compressed body does not fit. Out of the consumer's decoder: an `LLMCallEvent`,
the normalised record the MLflow sink writes. The decoder also takes the plain JSON bodies of LiteLLM's own
`aws_sqs` callback.

Packed messages (`pack_events`, read by `decode_message`): several small events in one SQS message, so the sender
pays botocore's per-request CPU once per many events. Version 1 of the packed format is JSON Lines: a header line
`{"schema": "litellm-mlflow/packed-1", "events": N}`, then N lines, each exactly a one-event body as above (JSON
never holds a raw newline), the whole gzip+base64 when that is smaller and the text is over PACK_COMPRESS_MIN_BYTES;
the `schema` attribute says `litellm-mlflow/packed-1` too. Bounded: at most MAX_EVENTS_PER_MESSAGE events and
PACK_MAX_BYTES of text a message; an event over PACK_MAX_EVENT_BYTES, or already compressed, travels alone in the
one-event format, which every consumer version reads (a packed message needs a consumer from this version on:
deploy the consumer first). Each line is decoded on its own under `DecodeLimits`, so a poison event fails alone and
its line is a complete one-event body to dead-letter by itself.

Pure Python, no third-party imports: the callback, the Lambda and the tests all load it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import gzip
import hashlib
import json
import math
import os
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from litellm_mlflow.redaction import (
    KEY_INFO,
    NEEDS_SCAN,
    REDACTED,
    SAFE_NAMES,
    SECRET_NAME,
    TEXT_NEEDS_SCAN,
    is_secret_key,
    key_info,
    redact_scanned,
    redact_text,
    text_needs_scan,
)

SCHEMA = "litellm-mlflow/1"
PACKED_SCHEMA = "litellm-mlflow/packed-1"
ENCODING_ATTRIBUTE = "content-encoding"
SCHEMA_ATTRIBUTE = "schema"
GZIP_BASE64 = "gzip+base64"

SQS_MAX_MESSAGE_BYTES = 1_048_576
SQS_MIN_MESSAGE_BYTES = 1_024
DEFAULT_MAX_MESSAGE_BYTES = SQS_MAX_MESSAGE_BYTES
DEFAULT_COMPRESS_THRESHOLD = 64 * 1024
# Packing: events per message (the sender's default; 1 switches packing off), text per message, the largest event
# that is packed (a bigger one is sent alone), and the smallest packed text worth compressing.
DEFAULT_EVENTS_PER_MESSAGE = 10
MAX_EVENTS_PER_MESSAGE = 100
PACK_MAX_BYTES = 256 * 1024
PACK_MAX_EVENT_BYTES = 64 * 1024
PACK_COMPRESS_MIN_BYTES = 8 * 1024
# The encoder replaces anything nested deeper than this with a marker; the decoder's limit is above it.
ENCODE_MAX_DEPTH = 48

TRUNCATION_MARKER = "...[truncated by litellm-mlflow: {removed} of {total} characters removed]"

REQUIRED_FIELDS = ("startTime", "endTime")
# A call's identity: LiteLLM's own per-call id (`litellm_call_id`, the x-litellm-call-id header). The payload's `id`
# is the provider's response id, which providers may repeat or leave empty; it is used only when no call id exists.
IDENTITY_FIELDS = ("litellm_call_id", "id")
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
# Whether LiteLLM's model map has a price for the call's model, read before `model_map_information` is dropped (a
# router deployment LiteLLM cannot price gets a map entry of zeros and a zero cost breakdown, just like a free one).
MODEL_PRICED_FIELD = "model_priced"
# LiteLLM's proxy marks a session id it minted itself (`general_settings.missing_session_id: generate`).
SESSION_ID_GENERATED_KEY = "litellm_session_id_generated"


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
    events: int = 1  # more than 1: a packed message (`pack_events`)


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
    client supplied, never an id LiteLLM made up for the call. `event_id` is LiteLLM's own call id; whatever had to
    be dropped, clamped or repaired for the call to be stored is named in `repaired_fields`.
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
    repaired_fields: tuple[str, ...] = ()
    payload: dict[str, Any] = field(default_factory=dict, repr=False)
    decoded_bytes: int = 0

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
    cleaned = _Cleaner(ENCODE_MAX_DEPTH, raise_too_deep=False).clean(value, 0)
    if isinstance(cleaned, str):
        return redact_text(cleaned)
    return json.loads(redact_text(json.dumps(cleaned, ensure_ascii=False)))


def prepare_payload(payload: Mapping[str, Any], *, log_content: bool = True) -> dict[str, Any]:
    """What leaves the process: the payload minus what MLflow never needs, secret-named keys redacted, text that
    cannot travel repaired (named in `repairs`), content optional. Values are redacted on the serialised text."""
    return _prepare(payload, log_content)[0]


def _prepare(payload: Mapping[str, Any], log_content: bool) -> tuple[dict[str, Any], bool]:
    """`prepare_payload`, and whether any name or string in it asked for the value scan (`redaction`)."""
    cleaner = _Cleaner(ENCODE_MAX_DEPTH, raise_too_deep=False)
    event: dict[str, Any] = {}
    details = token_details(payload)
    if details:
        event[TOKEN_DETAILS_FIELD] = details
    priced = model_priced(payload)
    if priced is not None:
        event[MODEL_PRICED_FIELD] = priced
    skipped = DROPPED_TOP_LEVEL_KEYS if log_content else _DROPPED_WITH_CONTENT
    plain_names = type(payload) is dict and SAFE_NAMES.issuperset(payload)
    text_flag = TEXT_NEEDS_SCAN.get
    for key, value in payload.items():
        if key in skipped:
            continue
        if plain_names:  # LiteLLM's own names, already judged plain: scalars are copied at once
            kind = type(value)
            if value is None or kind is float or kind is bool or (kind is int and -_BIG_INT < value < _BIG_INT):
                event[key] = value
                continue
            if kind is str and value.isascii():
                if not cleaner.needs_scan:
                    flag = text_flag(value)
                    cleaner.needs_scan = text_needs_scan(value) if flag is None else flag
                event[key] = value
                continue
        name = key if type(key) is str else _safe_str(key)
        cleaner.field = name
        if not name.isascii() and _BAD_TEXT.search(name):
            name = cleaner._text(name)
        info = KEY_INFO.get(name)
        if info is None:
            info = key_info(name)
        if info & NEEDS_SCAN:  # before the secret-name case: the name is context for the values beside it
            cleaner.needs_scan = True
        if info & SECRET_NAME and isinstance(value, _REDACTABLE):
            event[name] = REDACTED
            continue
        kind = type(value)
        if value is None or kind is float or kind is bool:
            event[name] = value
            continue
        if name == "metadata" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k not in DROPPED_METADATA_KEYS}
        elif name == "hidden_params" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k not in DROPPED_HIDDEN_PARAM_KEYS}
        event[name] = cleaner.clean(value, 0)
    if not log_content:
        event["content_logged"] = False
    if cleaner.repairs:
        event["repairs"] = sorted(cleaner.repairs)
    return event, cleaner.needs_scan


_REDACTABLE = (str, bytes, Mapping, list, tuple)
_DROPPED_WITH_CONTENT = DROPPED_TOP_LEVEL_KEYS | frozenset(CONTENT_KEYS)
# Text SQS refuses or UTF-8 cannot carry: lone surrogates (JavaScript clients cutting an emoji in half), U+FFFE, U+FFFF.
_BAD_TEXT = re.compile("[\ud800-\udfff\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NONCHARACTER = re.compile("[\ufffe\uffff]")
_BIG_INT = 10**1000  # well inside Python's 4,300-digit limit on int <-> str conversion
_INT64 = 2**63  # what MLflow and OTLP can carry as an integer
CYCLE_MARKER = "[circular reference removed by litellm-mlflow]"
DEPTH_MARKER = "[nested too deep: removed by litellm-mlflow]"


class TooDeep(ValueError):
    """Raised by a strict `_Cleaner` (the decoder) at its nesting limit."""


class _Cleaner:
    """One walk over a payload: JSON-native copies, secret-named keys redacted, and everything that would stop the
    event from being serialised or sent repaired and named (`repairs`: "<top-level field>:<what>").

    Repairs: lone surrogates -> U+FFFD (valid pairs are joined), circular references and nesting beyond `max_depth`
    -> a marker (or `TooDeep` when strict), integers beyond 1,000 digits -> a marker, other objects -> str().
    U+FFFE / U+FFFF are kept here and escaped in the JSON text (`_escape_nonchars`), so they travel unchanged.
    """

    __slots__ = ("_active", "field", "int_bound", "max_depth", "needs_scan", "raise_too_deep", "repairs")

    def __init__(self, max_depth: int, *, raise_too_deep: bool, int_bound: int = _BIG_INT) -> None:
        self.max_depth = max_depth
        self.raise_too_deep = raise_too_deep
        self.int_bound = int_bound
        self.repairs: set[str] = set()
        self.field = "event"
        self._active: set[int] = set()
        # Whether a name or string copied so far could hold a credential the value scan looks for (`redaction`).
        self.needs_scan = False

    def clean(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is str:
            if not value.isascii() and _BAD_TEXT.search(value):
                value = self._text(value)
            if not self.needs_scan:
                flag = TEXT_NEEDS_SCAN.get(value)
                if flag or (flag is None and text_needs_scan(value)):
                    self.needs_scan = True
            return value
        if kind is dict:
            return self._mapping(value, depth)
        if kind is list or kind is tuple:
            return self._sequence(value, depth)
        if kind is int:
            return value if -self.int_bound < value < self.int_bound else self._big_int(value)
        if value is None or kind is float or kind is bool:
            return value
        if isinstance(value, str):
            return self.clean(str.__str__(value), depth)
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return self.clean(int(value), depth)
        if isinstance(value, float):
            return float(value)
        if isinstance(value, Mapping):
            return self._mapping(value, depth)
        if isinstance(value, (list, tuple, set, frozenset)):
            return self._sequence(list(value), depth)
        return self.clean(_safe_str(value), depth)

    def _text(self, value: str) -> str:
        if _SURROGATE.search(value):
            self.repairs.add(f"{self.field}:unicode")
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        if _NONCHARACTER.search(value):
            self.repairs.add(f"{self.field}:sqs_invalid_chars_escaped")
        return value

    def _big_int(self, value: int) -> float | str:
        """Beyond `int_bound`: a float where one can hold it (JSON has one number type), else a marker."""
        self.repairs.add(f"{self.field}:integer_too_large")
        if value.bit_length() < 1000:
            return float(value)
        return f"[integer of about {int(value.bit_length() * 0.30103)} digits removed by litellm-mlflow]"

    def _enter(self, value: Any, depth: int) -> str | None:
        if depth >= self.max_depth:
            if self.raise_too_deep:
                raise TooDeep(f"field {self.field!r} is nested deeper than {self.max_depth} levels")
            self.repairs.add(f"{self.field}:too_deep")
            return DEPTH_MARKER
        marker = id(value)
        if marker in self._active:
            self.repairs.add(f"{self.field}:cycle")
            return CYCLE_MARKER
        self._active.add(marker)
        return None

    def _mapping(self, value: Mapping[Any, Any], depth: int) -> Any:
        """The hot loop of every encode: scalars are copied inline (no call per value), names and short strings are
        judged through the redaction module's memo tables, so a typical payload costs a dictionary look-up each."""
        stop = self._enter(value, depth)
        if stop is not None:
            return stop
        out: dict[str, Any] = {}
        child = depth + 1
        bound = self.int_bound
        needs_scan = self.needs_scan
        key_flags = KEY_INFO.get
        text_flag = TEXT_NEEDS_SCAN.get
        # Every name already judged plain (the usual case): only the values need looking at.
        plain_names = type(value) is dict and SAFE_NAMES.issuperset(value)
        for key, item in value.items():
            if not plain_names:
                if type(key) is not str:
                    key = _safe_str(key)
                if not key.isascii() and _BAD_TEXT.search(key):
                    key = self._text(key)
                info = key_flags(key)
                if info is None:
                    info = key_info(key)
                if info & NEEDS_SCAN:  # before the secret-name case: the name is context for the values beside it
                    needs_scan = True
                if info & SECRET_NAME and isinstance(item, _REDACTABLE):
                    out[key] = REDACTED
                    continue
            kind = type(item)
            if kind is str:
                if not item.isascii() and _BAD_TEXT.search(item):
                    item = self._text(item)
                if not needs_scan:
                    flag = text_flag(item)
                    needs_scan = text_needs_scan(item) if flag is None else flag
                out[key] = item
            elif item is None or kind is float or kind is bool or (kind is int and -bound < item < bound):
                out[key] = item
            else:
                if needs_scan:
                    self.needs_scan = True
                out[key] = self.clean(item, child)
                needs_scan = self.needs_scan
        if needs_scan:
            self.needs_scan = True
        self._active.discard(id(value))
        return out

    def _sequence(self, value: list[Any] | tuple[Any, ...], depth: int) -> Any:
        stop = self._enter(value, depth)
        if stop is not None:
            return stop
        out = [self.clean(item, depth + 1) for item in value]
        self._active.discard(id(value))
        return out


def _safe_str(value: Any) -> str:
    """str(value) for keys and objects JSON has no type for; an object whose str() fails still gives a string."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}: not representable>"


def _escape_nonchars(text: str) -> str:
    """JSON text with U+FFFE / U+FFFF written as escapes (SQS refuses them raw; the decoded value is unchanged)."""
    return _NONCHARACTER.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def _travel_safe(text: str) -> str:
    """Last line of defence on the serialised text: nothing SQS refuses or UTF-8 cannot carry goes out raw."""
    if text.isascii() or not _BAD_TEXT.search(text):
        return text
    if _SURROGATE.search(text):
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return _escape_nonchars(text)


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
    event, needs_scan = _prepare(payload, log_content)
    message = _encode(event, max_bytes, compress_threshold, needs_scan)
    if message.size <= max_bytes:
        return message
    return _encode_truncated(event, max_bytes, compress_threshold)


def _encode(event: dict[str, Any], max_bytes: int, compress_threshold: int, needs_scan: bool = True) -> EncodedMessage:
    """One serialisation of the already cleaned (JSON-native, acyclic) event; the value scan only if it may find
    something (`needs_scan`: False only when every name and string of `event` was judged safe on the way)."""
    text = _ENCODER.encode({"schema": SCHEMA, "event": event})
    text = _travel_safe(redact_scanned(text, needs_scan))
    raw = text.encode("utf-8")
    truncated = bool(event.get("truncated"))
    attributes = {SCHEMA_ATTRIBUTE: {"DataType": "String", "StringValue": SCHEMA}}
    if len(raw) <= compress_threshold and len(raw) + _attributes_size(attributes) <= max_bytes:
        return EncodedMessage(text, attributes, False, truncated, len(raw) + _attributes_size(attributes))
    body = base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")
    attributes[ENCODING_ATTRIBUTE] = {"DataType": "String", "StringValue": GZIP_BASE64}
    return EncodedMessage(body, attributes, True, truncated, len(body) + _attributes_size(attributes))


# The cleaned event is JSON-native and acyclic: no circular-reference bookkeeping per container.
_ENCODER = json.JSONEncoder(default=_safe_str, separators=(",", ":"), ensure_ascii=False, check_circular=False)


def _attributes_size(attributes: Mapping[str, Mapping[str, str]]) -> int:
    # SQS counts each attribute's name, data type and value against the message size.
    return sum(len(name) + len(attr["DataType"]) + len(attr["StringValue"]) for name, attr in attributes.items())


def packable(message: EncodedMessage) -> bool:
    """A one-event message small enough to share an SQS message with others (its body is its plain JSON text)."""
    return message.events == 1 and not message.compressed and len(message.body) <= PACK_MAX_EVENT_BYTES


def pack_events(messages: list[EncodedMessage], compress_min_bytes: int = PACK_COMPRESS_MIN_BYTES) -> EncodedMessage:
    """Several `packable` one-event messages as one packed message (format in the module docstring).

    The caller bounds the count (MAX_EVENTS_PER_MESSAGE) and the text (PACK_MAX_BYTES); the result is never larger
    than the plain text plus its header: gzip (level 1: most of the saving at a third of level 6's CPU) is kept only
    when it is smaller.
    """
    if not 1 < len(messages) <= MAX_EVENTS_PER_MESSAGE:
        raise ValueError(f"a packed message holds 2 to {MAX_EVENTS_PER_MESSAGE} events, not {len(messages)}")
    header = f'{{"schema":"{PACKED_SCHEMA}","events":{len(messages)}}}'
    text = "\n".join([header, *(message.body for message in messages)])
    truncated = any(message.truncated for message in messages)
    attributes = {SCHEMA_ATTRIBUTE: {"DataType": "String", "StringValue": PACKED_SCHEMA}}
    raw = text.encode("utf-8")
    if len(raw) >= compress_min_bytes:
        body = base64.b64encode(gzip.compress(raw, compresslevel=1, mtime=0)).decode("ascii")
        if len(body) < len(raw):
            attributes[ENCODING_ATTRIBUTE] = {"DataType": "String", "StringValue": GZIP_BASE64}
            size = len(body) + _attributes_size(attributes)
            return EncodedMessage(body, attributes, True, truncated, size, len(messages))
    return EncodedMessage(text, attributes, False, truncated, len(raw) + _attributes_size(attributes), len(messages))


def one_event_message(text: str) -> tuple[str, dict[str, dict[str, str]]]:
    """A one-event body text as an SQS message of its own (body, SendMessage attributes): one event of a packed
    message sent to the dead-letter queue alone. Compressed when large, as the encoder would."""
    attributes = {SCHEMA_ATTRIBUTE: {"DataType": "String", "StringValue": SCHEMA}}
    if len(text) <= DEFAULT_COMPRESS_THRESHOLD:
        return text, attributes
    attributes[ENCODING_ATTRIBUTE] = {"DataType": "String", "StringValue": GZIP_BASE64}
    return base64.b64encode(gzip.compress(text.encode("utf-8"), mtime=0)).decode("ascii"), attributes


# Identity fields the consumer keys on (trace ids, tags) stay whole whatever else is shortened.
_NEVER_TRUNCATED = frozenset(
    {"id", "model", "truncated", "repairs", "content_logged", "litellm_call_id", "trace_id", "session_id", "status",
     "call_type", "model_group", "model_id", "custom_llm_provider", CLIENT_SESSION_FIELD}
)  # fmt: skip


_NUMBERS_KEPT = ("completionStartTime", "prompt_tokens", "completion_tokens", "total_tokens", "response_cost",
                 "stream", "cache_hit", "cost_breakdown", TOKEN_DETAILS_FIELD, MODEL_PRICED_FIELD)  # fmt: skip


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

MAX_DECODED_BYTES_ENV = "LITELLM_MLFLOW_MAX_DECODED_BYTES"
MAX_NESTING_ENV = "LITELLM_MLFLOW_MAX_NESTING"
MAX_INT_DIGITS_ENV = "LITELLM_MLFLOW_MAX_INT_DIGITS"
MAX_EVENTS_PER_MESSAGE_ENV = "LITELLM_MLFLOW_MAX_EVENTS_PER_MESSAGE"


@dataclass(frozen=True)
class DecodeLimits:
    """Hard bounds on one message body, so a hostile record costs one failed record, never the Lambda's memory.

    `max_decoded_bytes` bounds the body after gzip (a 1 MB body can inflate a thousandfold), a packed message's
    events together; `max_depth` the nesting of the JSON and `max_int_digits` the length of an integer literal, each
    event's own; `max_events_per_message` the events of one packed message. The encoder stays well inside all four.
    """

    max_decoded_bytes: int = 8 * 1024 * 1024
    max_depth: int = 64
    max_int_digits: int = 100
    max_events_per_message: int = MAX_EVENTS_PER_MESSAGE

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DecodeLimits:
        """LITELLM_MLFLOW_MAX_DECODED_BYTES / _MAX_NESTING / _MAX_INT_DIGITS; a bad value raises ValueError."""
        env = os.environ if environ is None else environ
        default = cls()
        values = {}
        for name, attr, low, high in (
            (MAX_DECODED_BYTES_ENV, "max_decoded_bytes", 64 * 1024, 512 * 1024 * 1024),
            (MAX_NESTING_ENV, "max_depth", ENCODE_MAX_DEPTH + 2, 500),
            (MAX_INT_DIGITS_ENV, "max_int_digits", 20, 4000),
            (MAX_EVENTS_PER_MESSAGE_ENV, "max_events_per_message", 1, 10_000),
        ):
            raw = (env.get(name) or "").strip()
            if not raw:
                values[attr] = getattr(default, attr)
                continue
            if not raw.isdigit() or not low <= int(raw) <= high:
                raise ValueError(f"{name}={raw!r} must be a whole number between {low} and {high}")
            values[attr] = int(raw)
        return cls(**values)


DEFAULT_LIMITS = DecodeLimits()


def decode_body(
    body: str | bytes, attributes: Mapping[str, Any] | None = None, limits: DecodeLimits = DEFAULT_LIMITS
) -> LLMCallEvent:
    """Turn one SQS message body (ours, plain or gzip, or LiteLLM's own `aws_sqs`) into an `LLMCallEvent`.

    `attributes` may be in SendMessage form (`StringValue`) or Lambda-event form (`stringValue`); a gzip body is
    also recognised without them. Raises `EventDecodeError` naming what is wrong (never quoting the body) and nothing
    else; values that cannot be represented are repaired and named in `repaired_fields` instead.
    """
    try:
        return _decode(body, attributes, limits)
    except EventDecodeError:
        raise
    except Exception as exc:  # the promise is one documented error, whatever the body holds
        raise EventDecodeError(f"cannot read the event: {type(exc).__name__} ({_kind_of(exc)})") from exc


def _decode(body: str | bytes, attributes: Mapping[str, Any] | None, limits: DecodeLimits) -> LLMCallEvent:
    text, repairs = _load_text(body, _attribute(attributes, ENCODING_ATTRIBUTE), limits)
    if _is_packed(text, attributes):
        raise EventDecodeError("a packed message holds several events: read it with decode_message")
    return _event_from_text(text, repairs, limits)


def _event_from_text(text: str, repairs: list[str], limits: DecodeLimits) -> LLMCallEvent:
    document = _parse(text, limits)
    if not isinstance(document, dict):
        raise EventDecodeError(f"message body is JSON {_json_kind(document)}, expected an object")
    if "schema" in document:
        if document["schema"] != SCHEMA:
            raise EventDecodeError(
                f"unsupported schema ({_json_kind(document['schema'])}); this consumer reads {SCHEMA!r}"
            )
        payload, source = document.get("event"), "litellm-mlflow"
        if not isinstance(payload, dict):
            raise EventDecodeError(f"message body has no 'event' object (it is JSON {_json_kind(payload)})")
    elif document.get("__encrypted__"):
        raise EventDecodeError("encrypted aws_sqs payload: turn off the aws_sqs callback's encryption for this queue")
    else:
        payload, source = document, "aws_sqs"
    cleaner = _Cleaner(limits.max_depth - 2, raise_too_deep=True, int_bound=_INT64)
    clean: dict[str, Any] = {}
    for key, value in payload.items():
        cleaner.field = key if key.isascii() else "non-ascii field"
        name = cleaner.clean(key, 0)
        clean[name] = REDACTED if is_secret_key(name) and isinstance(value, _REDACTABLE) else _walk(cleaner, value)
    repairs.extend(cleaner.repairs)
    event = event_from_payload(clean, source=source, repairs=repairs, fallback_identity=text)
    return dataclasses.replace(event, decoded_bytes=len(text))


@dataclass(frozen=True)
class MessagePart:
    """One event of an SQS message: decoded (`event`) or not (`error`, naming why without quoting content). `text` is
    the event's own one-event body when it came packed (what goes to the dead-letter queue alone), else None."""

    event: LLMCallEvent | None
    error: str | None = None
    text: str | None = None


def decode_message(
    body: str | bytes, attributes: Mapping[str, Any] | None = None, limits: DecodeLimits = DEFAULT_LIMITS
) -> list[MessagePart]:
    """Every event of one SQS message, packed or not (module docstring). Raises `EventDecodeError` when the message
    as a whole cannot be read (a one-event message that does not decode, a packed message that is not gzip, has no
    valid header, or holds more events than `limits` allow); one unreadable event of a packed message is a part
    with its `error`, and the others still decode."""
    try:
        text, repairs = _load_text(body, _attribute(attributes, ENCODING_ATTRIBUTE), limits)
        if not _is_packed(text, attributes):
            return [MessagePart(_event_from_text(text, repairs, limits))]
        lines = _packed_lines(text, limits)
    except EventDecodeError:
        raise
    except Exception as exc:
        raise EventDecodeError(f"cannot read the message: {type(exc).__name__} ({_kind_of(exc)})") from exc
    parts = []
    for line in lines:
        try:
            parts.append(MessagePart(_event_from_text(line, list(repairs), limits), text=line))
        except EventDecodeError as exc:
            parts.append(MessagePart(None, str(exc), line))
        except Exception as exc:  # the promise is one documented error per event, whatever it holds
            parts.append(MessagePart(None, f"cannot read the event: {type(exc).__name__} ({_kind_of(exc)})", line))
    return parts


_PACKED_PREFIX = '{"schema":"litellm-mlflow/packed-'
_MAX_HEADER_CHARS = 200


def _is_packed(text: str, attributes: Mapping[str, Any] | None) -> bool:
    return text.startswith(_PACKED_PREFIX) or _attribute(attributes, SCHEMA_ATTRIBUTE) == PACKED_SCHEMA


def _packed_lines(text: str, limits: DecodeLimits) -> list[str]:
    """The event lines of a packed text, after checking its header (version, and a count within `limits` that
    matches the lines: a cut message is refused whole rather than stored in part without saying so)."""
    header_text, _, rest = text.partition("\n")
    if len(header_text) > _MAX_HEADER_CHARS:
        raise EventDecodeError("packed message header is missing or too long")
    try:
        header = json.loads(header_text)
    except json.JSONDecodeError:
        raise EventDecodeError("packed message header is not valid JSON") from None
    if not isinstance(header, dict) or header.get("schema") != PACKED_SCHEMA:
        raise EventDecodeError(f"unsupported packed message version; this consumer reads {PACKED_SCHEMA!r}")
    count = header.get("events")
    if type(count) is not int or not 1 <= count <= limits.max_events_per_message:
        raise EventDecodeError(
            f"packed message header must count 1 to {limits.max_events_per_message} events "
            f"(limit {MAX_EVENTS_PER_MESSAGE_ENV})"
        )
    lines = rest.split("\n", count) if rest else []
    if len(lines) != count:
        raise EventDecodeError(f"packed message announces {count} events but holds {len(lines)} lines")
    return lines


def _walk(cleaner: _Cleaner, value: Any) -> Any:
    try:
        return cleaner.clean(value, 0)
    except TooDeep as exc:
        raise EventDecodeError(f"{exc} (limit {MAX_NESTING_ENV})") from None


def _attribute(attributes: Mapping[str, Any] | None, name: str) -> str | None:
    if not attributes or not isinstance(attributes, Mapping) or name not in attributes:
        return None
    attr = attributes[name]
    if isinstance(attr, Mapping):
        value = attr.get("StringValue") or attr.get("stringValue")
        return value if isinstance(value, str) else None
    return str(attr)


def _load_text(body: str | bytes, encoding: str | None, limits: DecodeLimits) -> tuple[str, list[str]]:
    """The JSON text of a body, gunzipped under the size limit, with credential-looking values redacted."""
    repairs: list[str] = []
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", errors="replace")
    if not isinstance(body, str) or not body.strip():
        raise EventDecodeError("message body is empty")
    if len(body) > limits.max_decoded_bytes:
        raise EventDecodeError(f"message body exceeds {limits.max_decoded_bytes} bytes (limit {MAX_DECODED_BYTES_ENV})")
    text = body
    if encoding == GZIP_BASE64 or (encoding is None and body.startswith("H4sI")):
        text = _gunzip(body, limits.max_decoded_bytes)
        if text is None:
            repairs.append("body:invalid_utf8")
            text = _gunzip(body, limits.max_decoded_bytes, errors="replace")
    elif encoding not in (None, ""):
        raise EventDecodeError(f"unknown content-encoding {encoding!r}")
    if not text.isascii() and _SURROGATE.search(text):
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        repairs.append("body:unicode")
    return redact_text(text), repairs


def _gunzip(body: str, limit: int, errors: str = "strict") -> str | None:
    """Streamed gunzip that stops at `limit` bytes; None if the result is not UTF-8 (and `errors` is strict)."""
    try:
        compressed = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EventDecodeError(f"message body is marked gzip+base64 but is not base64: {exc}") from None
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        raw = inflater.decompress(compressed, limit + 1)
    except zlib.error as exc:
        raise EventDecodeError(f"message body is marked gzip+base64 but does not decode: {exc}") from None
    if len(raw) > limit or inflater.unconsumed_tail:
        raise EventDecodeError(f"gzip body inflates beyond {limit} bytes (limit {MAX_DECODED_BYTES_ENV})")
    if not inflater.eof:
        raise EventDecodeError("message body is marked gzip+base64 but does not decode: the gzip stream is truncated")
    try:
        return raw.decode("utf-8", errors=errors)
    except UnicodeDecodeError:
        return None


class _NumberTooLong(ValueError):
    pass


def _parse(text: str, limits: DecodeLimits) -> Any:
    digits = limits.max_int_digits

    def bounded_int(literal: str) -> int:
        if len(literal) > digits + 1:
            raise _NumberTooLong(f"an integer literal has {len(literal.lstrip('-'))} digits")
        return int(literal)

    try:
        return json.loads(text, parse_int=bounded_int)
    except _NumberTooLong as exc:
        raise EventDecodeError(f"{exc}; at most {digits} allowed (limit {MAX_INT_DIGITS_ENV})") from None
    except RecursionError:
        raise EventDecodeError(
            f"message body is nested deeper than {limits.max_depth} levels (limit {MAX_NESTING_ENV})"
        ) from None
    except json.JSONDecodeError as exc:
        raise EventDecodeError(f"message body is not valid JSON: {exc.msg} at position {exc.pos}") from None


def _json_kind(value: Any) -> str:
    """The JSON type of a value, for error messages that must never quote content."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _kind_of(exc: BaseException) -> str:
    return type(exc).__doc__.strip().splitlines()[0] if type(exc).__doc__ else "unexpected"


# A token count beyond this, or a cost beyond this many dollars, is a bug or an attack, not a call.
MAX_TOKENS = 10**12
MAX_COST_USD = 10**9
# Epoch seconds up to 2286; beyond that the value is read as milliseconds, microseconds or nanoseconds.
_MAX_EPOCH_S = 1e10


def event_from_payload(
    payload: Mapping[str, Any],
    *,
    source: str = "litellm-mlflow",
    repairs: list[str] | tuple[str, ...] = (),
    fallback_identity: str | None = None,
) -> LLMCallEvent:
    """Normalise a (possibly trimmed) StandardLoggingPayload; raises `EventDecodeError` only if no call time exists.

    Anything else that cannot be represented is repaired: a missing model becomes "unknown", times in ms/us/ns are
    scaled, out-of-range numbers are dropped (`invalid_fields`), and each repair is named in `repaired_fields`.
    """
    repaired = [*_encoder_repairs(payload.get("repairs")), *repairs]
    invalid: list[str] = []
    start_time = _epoch_seconds(payload, "startTime", invalid, repaired)
    end_time = _epoch_seconds(payload, "endTime", invalid, repaired)
    if start_time is None and end_time is None:
        missing = [key for key in REQUIRED_FIELDS if payload.get(key) in (None, "")]
        if missing:
            raise EventDecodeError(f"event is missing required field(s): {', '.join(missing)}")
        raise EventDecodeError(
            f"event fields startTime ({_json_kind(payload.get('startTime'))}) and endTime "
            f"({_json_kind(payload.get('endTime'))}) must be epoch seconds (a number from 1970 on)"
        )
    if start_time is None:
        start_time = end_time
        repaired.append("startTime:from_endTime")
    if end_time is None or end_time < start_time:
        end_time = start_time
        repaired.append("endTime:from_startTime")
    model = _text(payload.get("model"))
    if model is None:
        model = "unknown"
        repaired.append("model:missing")
    metadata = _mapping_field(payload, "metadata", invalid)
    model_parameters = _mapping_field(payload, "model_parameters", invalid)
    status = _text(payload.get("status")) or ("failure" if payload.get("error_str") else "success")
    prompt_tokens = _count(payload, "prompt_tokens", invalid, MAX_TOKENS, integer=True)
    completion_tokens = _count(payload, "completion_tokens", invalid, MAX_TOKENS, integer=True)
    total_tokens = _count(payload, "total_tokens", invalid, MAX_TOKENS, integer=True)
    if total_tokens is None and prompt_tokens is not None and completion_tokens is not None:
        total_tokens = prompt_tokens + completion_tokens
    completion_start = _epoch_seconds(payload, "completionStartTime", invalid, repaired)
    cost_usd = _count(payload, "response_cost", invalid, MAX_COST_USD)
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
        event_id=_identity(payload, fallback_identity, repaired),
        model=model,
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
        completion_start_time=completion_start,
        stream=_flag(payload.get("stream")) is True,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=total_tokens,
        cost_usd=cost_usd,
        cache_hit=_flag(payload.get("cache_hit")),
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
        request_tags=_tags(payload.get("request_tags"), invalid),
        messages=payload.get("messages"),
        response=payload.get("response"),
        model_parameters=model_parameters,
        error=_error(payload) if status != "success" else None,
        truncated=payload.get("truncated") is True,
        content_logged=payload.get("content_logged", True) is not False,
        source=source,
        invalid_fields=tuple(invalid),
        repaired_fields=tuple(dict.fromkeys(repaired)),
        payload=dict(payload),
    )


def _identity(payload: Mapping[str, Any], fallback: str | None, repaired: list[str]) -> str:
    """LiteLLM's call id, else the provider's id, else a hash of the body (the same on every redelivery)."""
    for key in IDENTITY_FIELDS:
        value = payload.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value)
    repaired.append("identity:derived")
    if fallback is None:
        fallback = json.dumps(payload, sort_keys=True, default=_safe_str)
    return "sha256:" + hashlib.sha256(fallback.encode("utf-8", "replace")).hexdigest()[:32]


def _encoder_repairs(value: Any) -> list[str]:
    """The callback's own list of repairs, bounded (the payload is untrusted)."""
    if not isinstance(value, list):
        return []
    return [item[:100] for item in value[:20] if isinstance(item, str)]


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
    priced = payload.get(MODEL_PRICED_FIELD) if MODEL_PRICED_FIELD in payload else model_priced(payload)
    if priced is not None:
        return not priced
    if payload.get("response_cost_failure_debug_info"):
        return True
    if "cost_breakdown" in payload:
        # LiteLLM writes a breakdown whenever it priced the call, even at 0; None means it could not.
        return not payload.get("cost_breakdown")
    # Older payloads have no breakdown: a call that used tokens and cost nothing had no price.
    return bool(payload.get("total_tokens"))


def model_priced(payload: Mapping[str, Any]) -> bool | None:
    """True when LiteLLM's model map entry for the call has a non-zero price, False when it has none (or only
    zeros), None when the payload carries no model map information."""
    information = payload.get("model_map_information")
    if not isinstance(information, Mapping):
        return None
    entry = information.get("model_map_value")
    if not isinstance(entry, Mapping):
        return False
    return any(
        "cost" in str(key) and isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        for key, value in entry.items()
    )


def token_details(payload: Mapping[str, Any]) -> dict[str, int]:
    """Cache-read, cache-creation and reasoning token counts, from wherever this payload has them: our own
    `token_details`, LiteLLM's usage object (metadata or hidden params), or the response's `usage`."""
    ours = payload.get(TOKEN_DETAILS_FIELD)
    if isinstance(ours, Mapping):
        return {key: value for key, value in ours.items() if _is_count(value)}
    metadata = payload.get("metadata")
    hidden = payload.get("hidden_params")
    response = payload.get("response")
    for usage in (
        metadata.get("usage_object") if isinstance(metadata, Mapping) else None,
        hidden.get("usage_object") if isinstance(hidden, Mapping) else None,
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
    text = value if isinstance(value, str) else _safe_str(value)
    return text or None


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _mapping_field(payload: Mapping[str, Any], key: str, invalid: list[str]) -> dict[str, Any]:
    value = payload.get(key)
    if isinstance(value, Mapping):
        return dict(value)
    if value is not None:
        invalid.append(key)
    return {}


def _tags(value: Any, invalid: list[str]) -> tuple[str, ...]:
    """`request_tags` as strings: a list of scalars (or one string); anything else is dropped and named."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, (list, tuple)):
        tags = tuple(_text(tag) for tag in value if isinstance(tag, (str, int, float)) and not isinstance(tag, bool))
        if len(tags) != len(value):
            invalid.append("request_tags")
        return tuple(tag for tag in tags if tag)
    invalid.append("request_tags")
    return ()


def _flag(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("true", "1", "yes"):
            return True
        if word in ("false", "0", "no", ""):
            return False
    return None


def _as_float(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _count(payload: Mapping[str, Any], key: str, invalid: list[str], limit: float, integer: bool = False) -> Any:
    """A non-negative number up to `limit` (numeric strings converted); anything else is None and named invalid."""
    value = payload.get(key)
    if value is None or value == "":
        return None
    number = _as_float(value)
    if number is None or not 0 <= number <= limit:
        invalid.append(key)
        return None
    return int(number) if integer else number


def _epoch_seconds(payload: Mapping[str, Any], key: str, invalid: list[str], repaired: list[str]) -> float | None:
    """Epoch seconds from 1970 to 2286; milliseconds, microseconds and nanoseconds are scaled (and named)."""
    value = payload.get(key)
    if value is None or value == "":
        return None
    number = _as_float(value)
    if number is None or number < 0:
        invalid.append(key)
        return None
    for unit in ("", "ms", "us", "ns"):
        if number < _MAX_EPOCH_S:
            if unit:
                repaired.append(f"{key}:{unit}")
            return number
        number /= 1000.0
    invalid.append(key)
    return None


def _error(payload: Mapping[str, Any]) -> ErrorInfo:
    info = payload.get("error_information")
    info = info if isinstance(info, Mapping) else {}
    return ErrorInfo(
        error_class=_text(info.get("error_class")),
        error_code=_text(info.get("error_code")),
        message=_text(info.get("error_message")) or _text(payload.get("error_str")),
        provider=_text(info.get("llm_provider")),
        traceback=_text(info.get("traceback")),
    )
