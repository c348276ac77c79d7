"""Property-based hostile input for the event contract: any JSON-ish payload -> encode -> decode -> build a trace.

Never anything but the documented error (`EventDecodeError`, and only on decode), never a lost or changed call
identity, never a credential-looking value in a body, never a character SQS refuses.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import re
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from litellm_mlflow import events, redaction
from litellm_mlflow.events import EventDecodeError
from litellm_mlflow.sink.trace_builder import build_trace

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SQS_INVALID = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Credentials of every kind the redaction covers, each unique enough to search for in a body.
CREDENTIALS = [
    "sk-proj-Zq8wYx2Vb7Nc4Md1Lk6Jh3Gf",
    "sk-ant-api03-Qw8Er7Ty6Ui5Op4As3Df2",
    "AKIAQWERTYUIOPASDFGH",
    "ASIAZXCVBNMLKJHGFDSA",
    "AIzaSyQwErTyUiOpAsDfGhJkLzXcVbNm123456",
    "ghp_Qw8Er7Ty6Ui5Op4As3Df2Gh1Jk0LzXcVbNm9",
    "xoxb-1234567890-Qw8Er7Ty6Ui5",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJxd2VydHkifQ.Qw8Er7Ty6Ui5Op4As3",
]
WRAPPERS = ["{}", "bearer {}", "Authorization: Bearer {}", "key={}", "\n{}\n", "x {} y"]
# An AWS secret access key has no prefix: it is recognised beside AWS words or an access key id (or by key name).
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYQWERTYKEY1"
AWS_WRAPPERS = ["aws_secret_access_key={}", "AWS secret: {}", "AKIAQWERTYUIOPASDFGH / {}", "\naws {}\n"]

any_text = st.text(st.characters(blacklist_categories=()), max_size=40)  # surrogates, U+FFFE/U+FFFF included
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**18, max_value=10**60),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
)
jsonish = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(any_text, children, max_size=4)),
    max_leaves=25,
)
credential = st.one_of(
    st.builds(lambda w, c: w.format(c), st.sampled_from(WRAPPERS), st.sampled_from(CREDENTIALS)),
    st.builds(lambda w: w.format(AWS_SECRET), st.sampled_from(AWS_WRAPPERS)),
)
secret_names = st.sampled_from(["Authorization", "x-api-key", "X-Functions-Key", "openai_key", "client_secret",
                                "aws_session_token", "Cookie", "password", "x-auth-key", "AUTH_TOKEN"])  # fmt: skip
times = st.one_of(
    st.floats(min_value=1e9, max_value=2e9), st.floats(min_value=1e12, max_value=2e12), st.floats(), any_text
)


@st.composite
def payloads(draw) -> dict:
    """A StandardLoggingPayload whose every field may be wrong, with credentials hidden in it."""
    call_id = str(uuid.UUID(int=draw(st.integers(min_value=0, max_value=2**128 - 1))))
    metadata = draw(st.dictionaries(any_text, jsonish, max_size=5))
    metadata[draw(secret_names)] = draw(st.one_of(any_text, credential))
    metadata[draw(any_text)] = draw(credential)
    messages = [{"role": "user", "content": f"{draw(any_text)} {draw(credential)}\n{draw(any_text)}"}, draw(jsonish)]
    return {
        "id": draw(st.one_of(st.just(""), st.just("chatcmpl-constant"), any_text, st.none())),
        "litellm_call_id": call_id,
        "model": draw(st.one_of(any_text, st.none(), st.integers())),
        "startTime": draw(times),
        "endTime": draw(times),
        "completionStartTime": draw(st.one_of(times, st.none())),
        "status": draw(st.sampled_from(["success", "failure", None])),
        "prompt_tokens": draw(st.one_of(st.integers(), st.floats(), any_text, st.none())),
        "completion_tokens": draw(st.one_of(st.integers(min_value=0, max_value=10**40), st.none())),
        "total_tokens": draw(st.one_of(st.floats(allow_nan=True), st.integers(), st.none())),
        "response_cost": draw(st.one_of(st.floats(), any_text, st.none())),
        "request_tags": draw(st.one_of(jsonish, st.lists(any_text, max_size=3))),
        "metadata": metadata,
        "model_parameters": draw(st.one_of(st.dictionaries(any_text, jsonish, max_size=3), jsonish)),
        "messages": messages,
        "response": draw(jsonish),
        "error_information": draw(st.one_of(jsonish, st.dictionaries(any_text, any_text, max_size=3))),
    }


def body_text(message: events.EncodedMessage) -> str:
    return gzip.decompress(base64.b64decode(message.body)).decode() if message.compressed else message.body


@SETTINGS
@given(payloads(), st.booleans())
def test_any_payload_travels_keeps_its_identity_and_never_carries_a_credential(payload: dict, content: bool) -> None:
    message = events.encode_event(payload, log_content=content, max_bytes=64 * 1024)
    assert message.size <= 64 * 1024
    assert not SQS_INVALID.search(message.body)
    text = body_text(message)
    assert not any(secret in text for secret in (*CREDENTIALS, AWS_SECRET))
    try:
        event = events.decode_body(message.body, message.attributes)
    except EventDecodeError as exc:  # only a call with no usable time at all is refused, and says so
        assert "startTime" in str(exc) or "endTime" in str(exc)
        return
    assert event.event_id == payload["litellm_call_id"] == event.call_id
    assert 0 <= event.start_time <= event.end_time < 1e10
    for count in (event.prompt_tokens, event.completion_tokens, event.total_tokens):
        assert count is None or 0 <= count <= events.MAX_TOKENS
    trace = build_trace(event, "1")
    assert trace.event_id == trace.trace_info().client_request_id == payload["litellm_call_id"]


@SETTINGS
@given(st.one_of(st.text(st.characters(blacklist_categories=())), st.binary()), st.sampled_from([None, "gzip+base64"]))
def test_any_body_decodes_or_fails_with_the_documented_error_only(body, encoding) -> None:
    attributes = {"content-encoding": {"stringValue": encoding}} if encoding else None
    with contextlib.suppress(EventDecodeError):
        events.decode_body(body, attributes)


@SETTINGS
@given(jsonish)
def test_any_json_value_as_an_event_decodes_or_fails_with_the_documented_error_only(value) -> None:
    for document in ({"schema": events.SCHEMA, "event": value}, value):
        try:
            text = events.json.dumps(document, ensure_ascii=True)
        except ValueError:  # NaN and friends are fine; integers beyond Python's str limit cannot even be written
            continue
        with contextlib.suppress(EventDecodeError):
            events.decode_body(text)


escape_prone = st.sampled_from(["\x08earer abcdefgh12", "\x08asic dXNlcjpwYXNz", "x\x1eyJhbGciOiJIUzI1NiJ9", "\x1akia"])


@SETTINGS
@given(st.dictionaries(any_text, jsonish, max_size=6), st.lists(st.one_of(escape_prone, credential), max_size=2))
def test_the_value_scan_is_skipped_only_where_it_would_change_nothing(payload: dict, extra: list) -> None:
    """The encoder runs the value regexes only when a name or string asked for them; the body must be exactly what
    scanning the whole serialised text gives (JSON escapes such as \\b included)."""
    payload["metadata"] = {"extra": extra}
    event, needs_scan = events._prepare(payload, True)
    text = events._ENCODER.encode({"schema": events.SCHEMA, "event": event})
    assert redaction.redact_scanned(text, needs_scan) == redaction.redact_text(text)
    assert needs_scan or not any(secret in text for secret in (*CREDENTIALS, AWS_SECRET))


def test_an_ordinary_payload_skips_the_value_scan() -> None:
    payload = {"model": "gpt-4o-mini", "metadata": {"user_api_key_team_id": "team-3", "tags": ["a", "b"]},
               "messages": [{"role": "user", "content": "Summarise the release notes, please."}]}  # fmt: skip
    assert events._prepare(payload, True)[1] is False
    payload["messages"].append({"role": "user", "content": "my key is sk-proj-Zq8wYx2Vb7Nc4Md1Lk6Jh3Gf"})
    assert events._prepare(payload, True)[1] is True


one_event_bodies = st.builds(lambda p: events.encode_event(p, max_bytes=64 * 1024).body, payloads())


@SETTINGS
@given(st.lists(st.one_of(one_event_bodies, st.text(st.characters(blacklist_categories=()), max_size=60)), max_size=5),
       st.sampled_from([None, 0, 3, 10**6, "2"]), st.booleans())  # fmt: skip
def test_any_packed_body_gives_parts_or_the_documented_error_only(lines: list, count, compress: bool) -> None:
    """A packed message whose header, count or lines may be wrong: parts (each an event or a reason), or one
    EventDecodeError for the whole message; never another exception, never more parts than the limit."""
    count = len(lines) if count is None else count
    text = "\n".join([json.dumps({"schema": events.PACKED_SCHEMA, "events": count}), *lines])
    body = base64.b64encode(gzip.compress(text.encode("utf-8", "surrogatepass"))).decode() if compress else text
    attributes = {"schema": {"stringValue": events.PACKED_SCHEMA}}
    try:
        parts = events.decode_message(body, attributes)
    except EventDecodeError:
        return
    assert len(parts) == count <= events.MAX_EVENTS_PER_MESSAGE
    for part in parts:
        assert (part.event is None) != (part.error is None) and part.text is not None
