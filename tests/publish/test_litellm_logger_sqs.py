"""The callback end to end: real LiteLLM (`mock_response`, no network) -> our logger -> a moto SQS server.

Every test checks what actually landed in the queue: each call exactly once, decodable, with the fields the MLflow
sink needs.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import litellm
import pytest

from litellm_mlflow import events
from litellm_mlflow.publish.litellm_logger import Settings, SqsEventLogger
from litellm_mlflow.publish.sqs_client import default_sqs_client
from tests.support.sqs_events import all_events

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
IDENTITY = {"user_api_key_user_id": "user-7", "user_api_key_team_id": "team-3", "user_api_key_alias": "ci-key"}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll with a deadline (LiteLLM runs logging hooks on its own threads/tasks after the call returns)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)


async def wait_until_async(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.01)


def delivered(queue, logger: SqsEventLogger, expected: int) -> list[events.LLMCallEvent]:
    """Wait until `expected` events were handed to the logger, flush it, and decode everything in the queue."""
    wait_until(lambda: logger.stats()["enqueued"] >= expected, what=f"{expected} events enqueued")
    assert logger.flush(timeout=30), logger.stats()
    return all_events(queue.receive_all())


@pytest.fixture
def make_logger(sqs_queue) -> Iterator[Callable[..., SqsEventLogger]]:
    """Fresh loggers registered as LiteLLM callbacks (and removed from all of LiteLLM's lists afterwards)."""
    created: list[SqsEventLogger] = []
    previous = list(litellm.callbacks)

    def make(settings: Settings | None = None, **kwargs) -> SqsEventLogger:
        logger = SqsEventLogger(settings or Settings.from_env(), **kwargs)
        created.append(logger)
        litellm.callbacks = [*previous, logger]
        return logger

    yield make
    for logger in created:
        litellm.logging_callback_manager.remove_callback_from_all_lists(logger)
        logger.flush(timeout=10)
    litellm.callbacks = previous


@pytest.fixture
def event_logger(make_logger) -> SqsEventLogger:
    return make_logger()


def by_call_id(decoded: list[events.LLMCallEvent]) -> dict[str, events.LLMCallEvent]:
    ids = [event.call_id for event in decoded]
    assert len(ids) == len(set(ids)), f"duplicate deliveries: {ids}"
    return {event.call_id: event for event in decoded}


def assert_complete(event: events.LLMCallEvent, status: str = "success") -> None:
    assert event.model == MODEL and event.provider == "openai"
    assert event.status == status
    assert event.call_id and event.event_id
    assert (event.user_id, event.team_id, event.key_alias) == ("user-7", "team-3", "ci-key")
    if status == "success":
        assert event.prompt_tokens and event.completion_tokens
        assert event.total_tokens == event.prompt_tokens + event.completion_tokens
        assert event.cost_usd and event.cost_usd > 0
    else:
        assert event.error is not None and event.error.error_class == "RateLimitError"


# ------------------------------------------------------------------------------------------------ SDK calls


def test_sync_success_failure_and_streaming_each_arrive_once(sqs_queue, event_logger) -> None:
    litellm.completion(model=MODEL, messages=MESSAGES, mock_response="Sunny.", metadata=IDENTITY)
    with pytest.raises(litellm.RateLimitError):
        litellm.completion(model=MODEL, messages=MESSAGES, mock_response="litellm.RateLimitError", metadata=IDENTITY)
    chunks = litellm.completion(model=MODEL, messages=MESSAGES, mock_response="Sunny and warm.", stream=True,
                                metadata=IDENTITY)  # fmt: skip
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == "Sunny and warm."

    decoded = delivered(sqs_queue, event_logger, 3)
    assert len(by_call_id(decoded)) == 3
    success, streamed, failure = sorted(decoded, key=lambda e: (e.status != "success", e.stream))
    assert_complete(success)
    assert success.response["choices"][0]["message"]["content"] == "Sunny."
    assert_complete(failure, status="failure")
    assert_complete(streamed)
    assert streamed.stream and streamed.ttft_ms is not None and streamed.ttft_ms >= 0
    assert event_logger.stats()["sent"] == 3


def test_async_success_failure_and_streaming_each_arrive_once(sqs_queue, event_logger) -> None:
    async def calls() -> None:
        await litellm.acompletion(model=MODEL, messages=MESSAGES, mock_response="Sunny.", metadata=IDENTITY)
        with pytest.raises(litellm.RateLimitError):
            await litellm.acompletion(model=MODEL, messages=MESSAGES, mock_response="litellm.RateLimitError",
                                      metadata=IDENTITY)  # fmt: skip
        stream = await litellm.acompletion(model=MODEL, messages=MESSAGES, mock_response="Sunny and warm.",
                                           stream=True, metadata=IDENTITY)  # fmt: skip
        async for _ in stream:
            pass
        await wait_until_async(lambda: event_logger.stats()["enqueued"] >= 3, what="3 async events")

    asyncio.run(calls())
    decoded = delivered(sqs_queue, event_logger, 3)
    assert len(by_call_id(decoded)) == 3
    success, streamed, failure = sorted(decoded, key=lambda e: (e.status != "success", e.stream))
    assert success.call_type == "acompletion"
    assert_complete(success)
    assert_complete(failure, status="failure")
    assert_complete(streamed)
    assert streamed.stream and streamed.ttft_ms is not None


def test_tool_calls_are_carried(sqs_queue, event_logger) -> None:
    litellm.completion(model=MODEL, messages=MESSAGES, tools=TOOLS, mock_response="", mock_tool_calls=[TOOL_CALL],
                       metadata=IDENTITY)  # fmt: skip
    (event,) = delivered(sqs_queue, event_logger, 1)
    assert_complete(event)
    (call,) = event.response["choices"][0]["message"]["tool_calls"]
    assert call["function"] == TOOL_CALL["function"]
    assert event.model_parameters["tools"][0]["function"]["name"] == "get_weather"


def test_two_megabyte_prompt_arrives_compressed(sqs_queue, event_logger) -> None:
    prompt = "def handler(event, context):\n    return {'statusCode': 200}\n" * 35_000  # ~2 MB of code
    assert len(prompt) > 2_000_000
    litellm.completion(model=MODEL, messages=[{"role": "user", "content": prompt}], mock_response="ok",
                       metadata=IDENTITY)  # fmt: skip
    wait_until(lambda: event_logger.stats()["enqueued"] >= 1)
    assert event_logger.flush(timeout=30)
    (message,) = sqs_queue.receive_all()
    assert message["MessageAttributes"]["content-encoding"]["StringValue"] == events.GZIP_BASE64
    event = events.decode_body(message["Body"], message["MessageAttributes"])
    assert not event.truncated and event.messages[0]["content"] == prompt


def test_log_content_switch_keeps_prompts_out_of_the_queue(sqs_queue, make_logger, monkeypatch) -> None:
    monkeypatch.setenv("LITELLM_MLFLOW_LOG_CONTENT", "false")
    logger = make_logger()
    litellm.completion(model=MODEL, messages=[{"role": "user", "content": "confidential plan"}],
                       mock_response="confidential answer", metadata=IDENTITY)  # fmt: skip
    wait_until(lambda: logger.stats()["enqueued"] >= 1)
    assert logger.flush(timeout=30)
    (message,) = sqs_queue.receive_all()
    assert "confidential" not in message["Body"]
    event = events.decode_body(message["Body"], message["MessageAttributes"])
    assert not event.content_logged and event.total_tokens


def test_200_concurrent_async_calls_give_200_messages_without_duplicates(sqs_queue, event_logger) -> None:
    async def burst() -> None:
        await asyncio.gather(
            *(litellm.acompletion(model=MODEL, messages=MESSAGES, mock_response=f"answer {i}", metadata=IDENTITY)
              for i in range(200))
        )  # fmt: skip
        await wait_until_async(lambda: event_logger.stats()["enqueued"] >= 200, what="200 async events")

    asyncio.run(burst())
    decoded = delivered(sqs_queue, event_logger, 200)
    assert len(by_call_id(decoded)) == 200
    answers = {event.response["choices"][0]["message"]["content"] for event in decoded}
    assert answers == {f"answer {i}" for i in range(200)}
    stats = event_logger.stats()
    assert stats["sent"] == 200 and stats["dropped_overflow"] == 0
    assert stats["requests"] <= 40  # batched: 200 events never take one request each


# ------------------------------------------------------------------------------------------------ LiteLLM's own aws_sqs


def test_body_from_litellms_own_aws_sqs_callback_decodes(sqs_queue, monkeypatch) -> None:
    from litellm.integrations.sqs import SQSLogger

    monkeypatch.setattr(litellm, "aws_sqs_callback_params", {})
    previous = list(litellm.callbacks)

    async def publish_with_builtin() -> None:
        builtin = SQSLogger(sqs_queue_url=sqs_queue.url, sqs_region_name="us-east-1", sqs_flush_interval=1)
        litellm.callbacks = [*previous, builtin]
        try:
            await litellm.acompletion(model=MODEL, messages=MESSAGES, mock_response="Sunny.", metadata=IDENTITY)
            await wait_until_async(lambda: len(builtin.log_queue) >= 1, what="aws_sqs to buffer the event")
            await builtin.flush_queue()

            def landed() -> bool:
                attributes = sqs_queue.client.get_queue_attributes(
                    QueueUrl=sqs_queue.url, AttributeNames=["ApproximateNumberOfMessages"]
                )["Attributes"]
                return int(attributes["ApproximateNumberOfMessages"]) >= 1

            deadline = time.monotonic() + 30
            while not await asyncio.to_thread(landed):
                assert time.monotonic() < deadline, "aws_sqs never delivered"
                await asyncio.sleep(0.05)
        finally:
            litellm.logging_callback_manager.remove_callback_from_all_lists(builtin)
            litellm.callbacks = previous

    asyncio.run(publish_with_builtin())
    (message,) = sqs_queue.receive_all()
    assert message["Body"].startswith("{") and "schema" not in message.get("MessageAttributes", {})
    event = events.decode_body(message["Body"], message.get("MessageAttributes"))
    assert event.source == "aws_sqs"
    assert_complete(event)


# ------------------------------------------------------------------------------------------------ faults


def test_sqs_outage_then_recovery_loses_nothing(sqs_server, sqs_queue, event_logger) -> None:
    litellm.completion(model=MODEL, messages=MESSAGES, mock_response="before", metadata=IDENTITY)
    wait_until(lambda: event_logger.stats()["enqueued"] >= 1)
    assert event_logger.flush(timeout=30)
    assert len(sqs_queue.receive_all()) == 1
    sqs_server.stop()
    try:
        for i in range(25):
            litellm.completion(model=MODEL, messages=MESSAGES, mock_response=f"during {i}", metadata=IDENTITY)
        wait_until(lambda: event_logger.stats()["failed_requests"] >= 1, what="the sender to hit the outage")
        assert event_logger.flush(timeout=0.2) is False
        stats = event_logger.stats()
        assert stats["sent"] == 1 and stats["pending"] == 25 and stats["dropped_overflow"] == 0
    finally:
        sqs_server.start()
    decoded = delivered(sqs_queue, event_logger, 26)
    answers = sorted(event.response["choices"][0]["message"]["content"] for event in decoded)
    assert len(by_call_id(decoded)) == 25
    assert answers == sorted(f"during {i}" for i in range(25))
    assert event_logger.stats()["retried"] >= 1 and event_logger.stats()["failed_permanently"] == 0


def _drop_some_entries(client, every: int = 2, times: int = 3) -> dict:
    """A botocore hook pair: leave every `every`-th entry out of the request and report it as failed (server side)."""
    state = {"injected": 0, "withheld": []}

    def withhold(params, **_):
        if state["injected"] >= times or len(params["Entries"]) < 2:
            return
        state["injected"] += 1
        state["withheld"] = params["Entries"][::every]
        params["Entries"] = [e for e in params["Entries"] if e not in state["withheld"]]

    def report(parsed, **_):
        for entry in state["withheld"]:
            parsed.setdefault("Failed", []).append(
                {"Id": entry["Id"], "SenderFault": False, "Code": "InternalError", "Message": "injected"}
            )
        state["withheld"] = []

    client.meta.events.register("before-parameter-build.sqs.SendMessageBatch", withhold)
    client.meta.events.register("after-call.sqs.SendMessageBatch", report)
    return state


def test_entries_sqs_reports_failed_are_retried(sqs_queue, make_logger) -> None:
    injected: list[dict] = []

    def flaky_client(queue_url: str):
        client = default_sqs_client(queue_url)
        injected.append(_drop_some_entries(client))
        return client

    logger = make_logger(client_factory=flaky_client)
    for i in range(30):
        litellm.completion(model=MODEL, messages=MESSAGES, mock_response=f"answer {i}", metadata=IDENTITY)
    decoded = delivered(sqs_queue, logger, 30)
    assert len(by_call_id(decoded)) == 30
    assert injected[0]["injected"] >= 1
    stats = logger.stats()
    assert stats["retried"] >= 1 and stats["sent"] == 30 and stats["failed_permanently"] == 0


def test_a_message_the_queue_refuses_is_isolated_and_counted(sqs_queue, make_logger) -> None:
    small = sqs_queue.client.create_queue(
        QueueName=sqs_queue.url.rsplit("/", 1)[1] + "-small", Attributes={"MaximumMessageSize": "8192"}
    )["QueueUrl"]
    logger = make_logger(Settings(queue_url=small))
    for i in range(4):
        litellm.completion(model=MODEL, messages=MESSAGES, mock_response=f"answer {i}", metadata=IDENTITY)
    litellm.completion(model=MODEL, messages=[{"role": "user", "content": os.urandom(12_000).hex()}],
                       mock_response="too big", metadata=IDENTITY)  # fmt: skip
    wait_until(lambda: logger.stats()["enqueued"] >= 5)
    wait_until(lambda: logger.stats()["pending"] == 0, what="the sender to settle")
    stats = logger.stats()
    assert (stats["sent"], stats["failed_permanently"]) == (4, 1)
    received = sqs_queue.receive_all(queue_url=small)
    assert sorted(m["Body"].count("answer") for m in received) == [1, 1, 1, 1]


EXIT_AT_ONCE = """
import atexit, asyncio, sys

# Registered first, so it runs last: after LiteLLM's and our exit-time flushes.
atexit.register(lambda: print("handed to the callback:", sqs_logger.stats()["enqueued"], flush=True))

import litellm
from litellm_mlflow.callback import sqs_logger

litellm.callbacks = [sqs_logger]
mode, count = sys.argv[1], int(sys.argv[2])
request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
if mode == "sync":
    for i in range(count):
        litellm.completion(mock_response=f"answer {i}", **request)
else:
    async def main():
        await asyncio.gather(*(litellm.acompletion(mock_response=f"answer {i}", **request) for i in range(count)))
        if mode == "async+aflush":
            await sqs_logger.aflush()
    asyncio.run(main())
print("calls done", flush=True)
"""


@pytest.mark.parametrize("mode", ["sync", "async+aflush", "async"])
def test_process_that_exits_right_after_200_calls_loses_nothing(sqs_queue, mode: str) -> None:
    """The module-level `sqs_logger`, as a proxy config or script uses it; nothing calls flush() explicitly.

    A plain async script that leaves `asyncio.run` at once lets LiteLLM cancel logging callbacks still in flight:
    those never reach any logger. What reached ours must all be in the queue; with `aflush()` that is every call.
    """
    result = subprocess.run(
        [sys.executable, "-c", EXIT_AT_ONCE, mode, "200"],
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "calls done" in result.stdout
    handed_over = int(result.stdout.split("handed to the callback:")[1].split()[0])
    decoded = all_events(sqs_queue.receive_all())
    answers = {event.response["choices"][0]["message"]["content"] for event in decoded}
    assert len(by_call_id(decoded)) == handed_over
    assert answers <= {f"answer {i}" for i in range(200)}
    if mode == "async":
        assert handed_over > 0
    else:
        assert handed_over == 200
