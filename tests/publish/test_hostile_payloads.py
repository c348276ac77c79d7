"""The callback with real LiteLLM calls and a local SQS: no event lost to its content, no credential in a body,
and LiteLLM's privacy switches honoured on success and failure paths alike."""

from __future__ import annotations

import litellm
import pytest

from litellm_mlflow import events
from tests.publish import test_litellm_logger_sqs as logger_tests
from tests.publish.test_litellm_logger_sqs import wait_until
from tests.support.sqs_events import body_text, message_events

make_logger = logger_tests.make_logger  # the fixture, shared with the callback's SQS tests

SECRET_PROMPT = "my secret merger plan"
ANSWER = "the answer nobody may log"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImlhdCI6MTUxNjIzOTAyMn0.c2lnbmF0dXJlLXZhbHVlLWhlcmU"
ASIA = "ASIAZ3EXAMPLE7KEYID9"
SECRETS = (JWT, ASIA, "sk-ant-api03-abcdefghijklmnopqrstuv", "AIzaSyA1234567890abcdefghijklmnopqrstu")


@pytest.fixture
def new_logger(make_logger):
    return make_logger


def raw_bodies(queue) -> list[tuple[str, events.LLMCallEvent]]:
    out = []
    for message in queue.receive_all():
        text = body_text(message)
        out.extend((text, event) for event in message_events(message))
    return out


def call(success: bool, **kwargs) -> None:
    messages = [{"role": "user", "content": SECRET_PROMPT}]
    if success:
        litellm.completion(model="gpt-4o-mini", messages=messages, mock_response=ANSWER, **kwargs)
    else:
        with pytest.raises(litellm.RateLimitError):
            litellm.completion(model="gpt-4o-mini", messages=messages, mock_response="litellm.RateLimitError", **kwargs)


def published(queue, logger, expected: int) -> list[tuple[str, events.LLMCallEvent]]:
    wait_until(lambda: logger.stats()["enqueued"] >= expected, what=f"{expected} events enqueued")
    assert logger.flush(timeout=30), logger.stats()
    return raw_bodies(queue)


SWITCHES = {
    "global turn_off_message_logging": ({"turn_off_message_logging": True}, {}),
    "callback_settings message_logging": ({"callback_settings": {"litellm_mlflow": {"message_logging": False}}}, {}),
    "per-request turn_off_message_logging": ({}, {"turn_off_message_logging": True}),
}


@pytest.mark.parametrize("success", [True, False], ids=["success", "failure"])
@pytest.mark.parametrize("switch", SWITCHES)
def test_litellm_message_logging_switches_hold_on_both_paths(
    switch: str, success: bool, new_logger, sqs_queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, call_kwargs = SWITCHES[switch]
    for name, value in settings.items():
        monkeypatch.setattr(litellm, name, value, raising=False)
    logger = new_logger()
    call(success, **call_kwargs)
    [(text, event)] = published(sqs_queue, logger, 1)
    assert SECRET_PROMPT not in text and ANSWER not in text
    assert event.content_logged is False and event.status == ("success" if success else "failure")


@pytest.mark.parametrize("success", [True, False], ids=["success", "failure"])
def test_redact_user_api_key_info_removes_key_identity(
    success: bool, new_logger, sqs_queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(litellm, "redact_user_api_key_info", True)
    logger = new_logger()
    call(success, metadata={"user_api_key_alias": "ci-key", "user_api_key_user_id": "user-7"})
    [(text, event)] = published(sqs_queue, logger, 1)
    assert "user_api_key" not in text and "ci-key" not in text
    assert event.key_alias is None


def test_content_that_cannot_travel_is_repaired_and_sent_and_credentials_never_are(new_logger, sqs_queue) -> None:
    logger = new_logger()
    prompts = {
        "half an emoji": "cut here \ud83d",
        "noncharacters": "bad \ufffe and \uffff chars",
        "credentials": f"authorization: bearer {JWT} and key {ASIA} then {SECRETS[2]} {SECRETS[3]}",
    }
    for tag, prompt in prompts.items():
        litellm.completion(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": prompt}],
            mock_response="ok",
            metadata={"tags": [tag]},
        )
    delivered = published(sqs_queue, logger, len(prompts))
    assert len(delivered) == len(prompts) and logger.stats()["failed_permanently"] == 0
    by_tag = {event.request_tags[0]: (text, event) for text, event in delivered}
    for text, event in by_tag.values():
        assert not any(secret in text for secret in SECRETS)
        assert event.event_id == event.call_id  # LiteLLM's own call id
    assert by_tag["half an emoji"][1].messages[0]["content"] == "cut here \ufffd"
    assert "messages:unicode" in by_tag["half an emoji"][1].repaired_fields
    assert by_tag["noncharacters"][1].messages[0]["content"] == prompts["noncharacters"]  # escaped, not lost
    assert "\ufffe" not in by_tag["noncharacters"][0]  # never raw in the body SQS sees
    assert "bearer [REDACTED]" in by_tag["credentials"][1].messages[0]["content"]


def test_a_payload_with_a_circular_reference_and_secret_named_keys_is_sent(new_logger, sqs_queue) -> None:
    """LiteLLM hands the hook whatever metadata the caller built: a cycle must not cost the event."""
    logger = new_logger()
    cyclic: dict = {"note": "loops"}
    cyclic["self"] = cyclic
    payload = {
        "id": "", "litellm_call_id": "call-cyclic", "model": "m", "startTime": 1.0, "endTime": 2.0,
        "metadata": {"requester_metadata": {"loop": cyclic, "openai_key": "plainkeyplainkeyplainkey",
                                            "X-Functions-Key": "fnkeyfnkeyfnkey", "x-auth-key": "authkeyauthkey"}},
    }  # fmt: skip
    logger.log_success_event(kwargs={"standard_logging_object": payload}, response_obj=None, start_time=0, end_time=0)
    [(text, event)] = published(sqs_queue, logger, 1)
    assert event.event_id == "call-cyclic"
    assert "metadata:cycle" in event.repaired_fields
    assert not any(value in text for value in ("plainkeyplainkey", "fnkeyfnkey", "authkeyauthkey"))
