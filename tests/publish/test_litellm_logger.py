"""The callback without SQS: configuration, the hook interface LiteLLM relies on, and never losing events silently."""

from __future__ import annotations

import inspect
import logging
import os

import pytest
from litellm.integrations.custom_logger import CustomLogger

from litellm_mlflow.publish import litellm_logger as callback
from litellm_mlflow.publish.litellm_logger import Settings, SqsEventLogger

HOOKS = ("log_success_event", "log_failure_event", "async_log_success_event", "async_log_failure_event")


def payload(i: int = 0) -> dict:
    return {"id": f"chatcmpl-{i}", "model": "m", "startTime": 1.0, "endTime": 2.0, "status": "success"}


def call_hook(logger: SqsEventLogger, i: int = 0) -> None:
    # LiteLLM passes these by keyword, so the names are the interface.
    logger.log_success_event(
        kwargs={"standard_logging_object": payload(i)}, response_obj=None, start_time=None, end_time=None
    )


def test_module_instance_is_a_litellm_custom_logger() -> None:
    assert isinstance(callback.sqs_logger, CustomLogger)
    for name in HOOKS:
        parameters = list(inspect.signature(getattr(SqsEventLogger, name)).parameters)
        assert parameters == ["self", "kwargs", "response_obj", "start_time", "end_time"], name


def test_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "LITELLM_MLFLOW_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/q",
            "LITELLM_MLFLOW_LOG_CONTENT": "false",
            "LITELLM_MLFLOW_MAX_MESSAGE_BYTES": "262144",
            "LITELLM_MLFLOW_COMPRESS_THRESHOLD_BYTES": "1024",
            "LITELLM_MLFLOW_BUFFER_SIZE": "50",
            "LITELLM_MLFLOW_BATCH_LINGER_MS": "20",
            "LITELLM_MLFLOW_MAX_IN_FLIGHT": "4",
        }
    )
    assert settings == Settings(
        queue_url="https://sqs.eu-west-1.amazonaws.com/123456789012/q",
        log_content=False,
        max_message_bytes=262_144,
        compress_threshold=1024,
        buffer_size=50,
        linger_ms=20.0,
        max_in_flight=4,
    )
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LITELLM_MLFLOW_LOG_CONTENT", "maybe"),
        ("LITELLM_MLFLOW_MAX_MESSAGE_BYTES", "2000000"),
        ("LITELLM_MLFLOW_MAX_MESSAGE_BYTES", "lots"),
        ("LITELLM_MLFLOW_BUFFER_SIZE", "0"),
        ("LITELLM_MLFLOW_MAX_IN_FLIGHT", "0"),
    ],
)
def test_a_bad_setting_is_logged_and_the_default_kept(name: str, value: str, caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="litellm_mlflow.publish.litellm_logger"):
        assert Settings.from_env({name: value}) == Settings()
    assert name in caplog.text and repr(value) in caplog.text


def test_missing_queue_url_is_a_clear_error_and_events_stay_counted(monkeypatch, caplog) -> None:
    monkeypatch.delenv("LITELLM_MLFLOW_QUEUE_URL", raising=False)
    logger = SqsEventLogger(Settings(buffer_size=5, linger_ms=0))
    with caplog.at_level(logging.ERROR):
        for i in range(12):
            call_hook(logger, i)  # must not raise: a proxy keeps serving
        assert logger.flush(timeout=5) is False
    stats = logger.stats()
    assert (stats["enqueued"], stats["degraded_overflow"], stats["dropped_overflow"]) == (10, 5, 2)
    assert (stats["pending"], stats["sent"]) == (10, 0)
    assert "LITELLM_MLFLOW_QUEUE_URL is not set" in caplog.text
    assert "event buffer full (5 events): so far 1 event(s) kept WITHOUT prompts and responses" in caplog.text
    assert "and 1 DROPPED" in caplog.text


def test_a_call_without_standard_logging_object_is_counted(caplog) -> None:
    logger = SqsEventLogger(Settings(queue_url="https://sqs.us-east-1.amazonaws.com/1/q"))
    with caplog.at_level(logging.WARNING):
        logger.log_failure_event(kwargs={"call_type": "embedding"}, response_obj=None, start_time=None, end_time=None)
    assert logger.stats()["missing_payload"] == 1 and logger.stats()["enqueued"] == 0
    assert "without standard_logging_object" in caplog.text


def test_a_forked_worker_starts_clean_instead_of_resending_the_parents_events() -> None:
    from litellm_mlflow.events import encode_event
    from litellm_mlflow.publish.sender import SqsBatchSender

    sender = SqsBatchSender(queue_url=None, encode=encode_event, linger_s=0)
    for i in range(3):
        sender.submit(payload(i))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child (a gunicorn/uvicorn worker): the parent's buffer is not its to send
        stats = sender.stats()
        os.write(write_end, f"{stats['enqueued']} {stats['pending']} {sender.flush(0.1)}".encode())
        os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert os.read(read_end, 100).decode() == "0 0 True"
    assert sender.stats()["pending"] == 3  # the parent still owns them
