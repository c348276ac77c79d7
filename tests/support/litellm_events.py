"""Test support (a pytest plugin, loaded by tests/conftest.py): real LiteLLM events, Lambda SQS records built
from them, and the real consumer handler file."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import litellm
import pytest
from litellm.integrations.custom_logger import CustomLogger

from litellm_mlflow import events
from litellm_mlflow.events import encode_event
from litellm_mlflow.local.event_source import LocalLambdaContext as FakeLambdaContext
from litellm_mlflow.local.event_source import load_handler

REPO_ROOT = Path(__file__).resolve().parents[2]
CONSUMER_HANDLER = REPO_ROOT / "functions" / "consumer" / "handler.py"


class PayloadCapture(CustomLogger):
    """Keeps every StandardLoggingPayload LiteLLM hands its callbacks (success and failure, sync and async)."""

    def __init__(self) -> None:
        super().__init__()
        self.payloads: list[dict] = []
        self._lock = threading.Lock()

    def _keep(self, kwargs: dict) -> None:
        payload = kwargs.get("standard_logging_object")
        if payload is not None:
            # What our callback adds on the proxy side (only it sees the request's litellm_params).
            session = events.client_session_id(kwargs.get("litellm_params"))
            with self._lock:
                self.payloads.append({**payload, events.CLIENT_SESSION_FIELD: session})

    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._keep(kwargs)

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._keep(kwargs)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[dict]:
        """LiteLLM logs streams from a worker thread: poll until `count` payloads arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.payloads) >= count:
                    return list(self.payloads)
            time.sleep(0.02)
        raise AssertionError(f"LiteLLM logged {len(self.payloads)} payloads, expected {count}")


@pytest.fixture
def litellm_capture() -> Iterator[PayloadCapture]:
    # LiteLLM copies `callbacks` into its per-kind lists once and skips a second logger of the same class, so
    # every test starts from empty lists (and leaves them empty).
    names = ("input_callback", "success_callback", "failure_callback", "_async_success_callback",
             "_async_failure_callback", "callbacks")  # fmt: skip
    previous = {name: list(getattr(litellm, name)) for name in names}
    capture = PayloadCapture()
    litellm.logging_callback_manager._reset_all_callbacks()
    litellm.callbacks = [capture]
    try:
        yield capture
    finally:
        for name, value in previous.items():
            setattr(litellm, name, value)


TOOL_CALL = {
    "id": "call_weather_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Tokyo"}'},
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def make_calls(capture: PayloadCapture, model: str = "gpt-4o-mini") -> dict[str, dict]:
    """Four real LiteLLM SDK calls with mock responses: success, failure, stream, tool call. Payloads by kind."""
    messages = [{"role": "user", "content": "What is MLflow?"}]
    litellm.completion(
        model=model,
        messages=messages,
        mock_response="MLflow is an open source MLOps platform.",
        user="alice",
        metadata={"tags": ["team:search", "canary"]},
    )
    with pytest.raises(litellm.RateLimitError):
        litellm.completion(model=model, messages=messages, mock_response="litellm.RateLimitError")
    stream = litellm.completion(model=model, messages=messages, mock_response="streamed answer here", stream=True)
    for _ in stream:
        pass
    litellm.completion(
        model=model,
        messages=[{"role": "user", "content": "Weather in Tokyo?"}],
        tools=[WEATHER_TOOL],
        mock_tool_calls=[TOOL_CALL],
    )
    payloads = capture.wait_for(4)
    by_kind: dict[str, dict] = {}
    for payload in payloads:
        if payload["status"] != "success":
            by_kind["failure"] = payload
        elif payload.get("stream"):
            by_kind["stream"] = payload
        elif "tools" in (payload.get("model_parameters") or {}):
            by_kind["tool"] = payload
        else:
            by_kind["success"] = payload
    assert set(by_kind) == {"success", "failure", "stream", "tool"}, sorted(by_kind)
    return by_kind


def sqs_record(payload: dict | None = None, *, body: str | None = None, receive_count: int = 1) -> dict:
    """One record as Lambda's SQS event source mapping delivers it (attribute keys in camelCase)."""
    attributes: dict[str, dict[str, str]] = {}
    if payload is not None:
        message = encode_event(payload)
        body = message.body
        attributes = {
            name: {"stringValue": attr["StringValue"], "dataType": attr["DataType"]}
            for name, attr in message.attributes.items()
        }
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": uuid.uuid4().hex,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": str(int(time.time() * 1000)),
            "SenderId": "AIDATEST",
            "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
        },
        "messageAttributes": attributes,
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:litellm-events",
        "awsRegion": "us-east-1",
    }


def sqs_event(records: list[dict]) -> dict:
    return {"Records": records}


def load_consumer_handler() -> Callable[[dict, Any], dict]:
    """A fresh import of functions/consumer/handler.py (as Lambda loads it), so each test gets its own sink."""
    return load_handler(CONSUMER_HANDLER)


@pytest.fixture
def experiment_name(monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"consumer-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", name)
    return name


@pytest.fixture
def consumer(mlflow_server, experiment_name: str, monkeypatch: pytest.MonkeyPatch) -> Callable[[dict], dict]:
    """The real handler pointed at the session's MLflow server and this test's own experiment."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    handler = load_consumer_handler()
    return lambda event, context=None: handler(event, context or FakeLambdaContext())


def failed_ids(response: dict) -> set[str]:
    return {item["itemIdentifier"] for item in response["batchItemFailures"]}
