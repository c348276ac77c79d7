"""The LiteLLM callback: every call (success or failure, sync or async, streamed or not) becomes one event on SQS
(small events are packed up to LITELLM_MLFLOW_EVENTS_PER_MESSAGE to a message; 1 sends one event per message).

Proxy config:   litellm_settings: {callbacks: litellm_mlflow.callback.sqs_logger}
SDK:            litellm.callbacks = [litellm_mlflow.callback.sqs_logger]

The hooks only hand `kwargs["standard_logging_object"]` to a `SqsBatchSender` (an O(1) append); encoding,
batching, retries and the boto3 client live on the sender's background thread. Configuration comes from the
environment at first use (see `Settings`), so importing this module never fails and never needs AWS.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from litellm_mlflow import events
from litellm_mlflow.publish import logging_switches, proxy_shutdown
from litellm_mlflow.publish.exit_hooks import exit_flush_timeout, litellm_logging_worker
from litellm_mlflow.publish.sender import DEFAULT_MAX_IN_FLIGHT, SqsBatchSender
from litellm_mlflow.publish.sender_stats import LOG_EVERY_S

logger = logging.getLogger("litellm_mlflow.publish.litellm_logger")

QUEUE_URL_ENV = "LITELLM_MLFLOW_QUEUE_URL"
LOG_CONTENT_ENV = "LITELLM_MLFLOW_LOG_CONTENT"
MAX_MESSAGE_BYTES_ENV = "LITELLM_MLFLOW_MAX_MESSAGE_BYTES"
COMPRESS_THRESHOLD_ENV = "LITELLM_MLFLOW_COMPRESS_THRESHOLD_BYTES"
BUFFER_SIZE_ENV = "LITELLM_MLFLOW_BUFFER_SIZE"
LINGER_MS_ENV = "LITELLM_MLFLOW_BATCH_LINGER_MS"
MAX_IN_FLIGHT_ENV = "LITELLM_MLFLOW_MAX_IN_FLIGHT"
EVENTS_PER_MESSAGE_ENV = "LITELLM_MLFLOW_EVENTS_PER_MESSAGE"

SQS_MAX = events.SQS_MAX_MESSAGE_BYTES
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class Settings:
    """Everything the callback can be told; read once, when the first event arrives."""

    queue_url: str | None = None
    log_content: bool = True
    max_message_bytes: int = events.DEFAULT_MAX_MESSAGE_BYTES
    compress_threshold: int = events.DEFAULT_COMPRESS_THRESHOLD
    buffer_size: int = 10_000
    # A batch waits up to 1 s to fill: at a modest rate each SendMessageBatch is ~10x fewer calls than at 100 ms,
    # and each call's botocore work holds the proxy's GIL for a moment. bench_proxy measured the p99 cost of the
    # callback at 20-40 req/s: 1.03-1.13x of no callback at 100 ms, 1.02-1.04x at 1 s (its long run). A busy proxy
    # fills batches well before the second; flushes at shutdown never wait for it.
    linger_ms: float = 1000.0
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    events_per_message: int = events.DEFAULT_EVENTS_PER_MESSAGE

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the LITELLM_MLFLOW_* variables; a bad value is logged as an error and its default used instead."""
        env = os.environ if environ is None else environ
        default = cls()
        return cls(
            queue_url=env.get(QUEUE_URL_ENV) or None,
            log_content=_env_bool(env, LOG_CONTENT_ENV, default.log_content),
            max_message_bytes=_env_number(
                env, MAX_MESSAGE_BYTES_ENV, default.max_message_bytes, events.SQS_MIN_MESSAGE_BYTES, SQS_MAX
            ),
            compress_threshold=_env_number(env, COMPRESS_THRESHOLD_ENV, default.compress_threshold, 0, 1 << 30),
            buffer_size=_env_number(env, BUFFER_SIZE_ENV, default.buffer_size, 1, 10_000_000),
            linger_ms=_env_number(env, LINGER_MS_ENV, default.linger_ms, 0, 60_000),
            max_in_flight=_env_number(env, MAX_IN_FLIGHT_ENV, default.max_in_flight, 1, 256),
            events_per_message=_env_number(
                env, EVENTS_PER_MESSAGE_ENV, default.events_per_message, 1, events.MAX_EVENTS_PER_MESSAGE
            ),
        )


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    word = raw.strip().lower()
    if word in _TRUE_WORDS or word in _FALSE_WORDS:
        return word in _TRUE_WORDS
    logger.error("litellm-mlflow: %s=%r is not true/false; using %s", name, raw, default)
    return default


def _env_number(env: Mapping[str, str], name: str, default: Any, low: float, high: float) -> Any:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = type(default)(float(raw))
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        logger.error("litellm-mlflow: %s=%r must be a number in [%s, %s]; using %s", name, raw, low, high, default)
        return default
    return value


class SqsEventLogger(CustomLogger):
    """LiteLLM logger that publishes each call's StandardLoggingPayload to SQS without blocking the call.

    Arguments override the environment (see `Settings.from_env`). `flush(timeout)` and `close(timeout)` are public
    so a host can drain on its own shutdown; at interpreter exit this happens automatically.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        client_factory: Callable[[str], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """`client_factory(queue_url)` replaces the default boto3 client (custom sessions, tests' fault hooks)."""
        super().__init__(**kwargs)
        self._settings = settings
        self._client_factory = client_factory
        self._sender: SqsBatchSender | None = None
        self._start_lock = threading.Lock()
        self.missing_payload = 0
        self._last_missing_log = 0.0
        _LOGGERS.add(self)

    # LiteLLM calls these with keyword arguments: the parameter names are part of the interface.
    def log_success_event(self, kwargs, response_obj, start_time, end_time) -> None:
        self._publish(kwargs)

    def log_failure_event(self, kwargs, response_obj, start_time, end_time) -> None:
        self._publish(kwargs)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time) -> None:
        self._publish(kwargs)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time) -> None:
        self._publish(kwargs)

    def _publish(self, kwargs: Mapping[str, Any]) -> None:
        """The only work on the caller's thread: a shallow copy (LiteLLM may reuse the dict), LiteLLM's privacy
        switches (a few lookups) and an append."""
        payload = kwargs.get("standard_logging_object")
        if not isinstance(payload, Mapping):
            self._report_missing_payload(kwargs)
            return
        sender = self._sender or self._start()
        event = dict(payload)
        # Only the callback can tell a session the client supplied from an id LiteLLM made up for the call.
        event[events.CLIENT_SESSION_FIELD] = events.client_session_id(kwargs.get("litellm_params"))
        sender.submit(logging_switches.apply(event, kwargs, self))

    def _report_missing_payload(self, kwargs: Mapping[str, Any]) -> None:
        self.missing_payload += 1
        now = time.monotonic()
        if now - self._last_missing_log >= LOG_EVERY_S:
            self._last_missing_log = now
            logger.warning(
                "litellm-mlflow: a LiteLLM callback came without standard_logging_object (call type %r); "
                "%d such call(s) could not be published",
                kwargs.get("call_type"),
                self.missing_payload,
            )

    def _start(self) -> SqsBatchSender:
        proxy_shutdown.install(flush_all_loggers)
        with self._start_lock:
            if self._sender is None:
                settings = self._settings or Settings.from_env()
                self._settings = settings
                if not settings.queue_url:
                    logger.error(
                        "litellm-mlflow: %s is not set, so LiteLLM calls cannot be published to SQS. Events are "
                        "kept in memory (up to %d), counted, and reported as lost at exit.",
                        QUEUE_URL_ENV,
                        settings.buffer_size,
                    )
                self._sender = SqsBatchSender(
                    queue_url=settings.queue_url,
                    encode=functools.partial(
                        events.encode_event,
                        log_content=settings.log_content,
                        max_bytes=settings.max_message_bytes,
                        compress_threshold=settings.compress_threshold,
                    ),
                    buffer_size=settings.buffer_size,
                    linger_s=settings.linger_ms / 1000.0,
                    client_factory=self._client_factory,
                    max_in_flight=settings.max_in_flight,
                    events_per_message=settings.events_per_message,
                    max_message_bytes=settings.max_message_bytes,
                )
            return self._sender

    # ------------------------------------------------------------------------------------------- control

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until every event so far is in SQS (True) or `timeout` passes / no queue is configured (False)."""
        return True if self._sender is None else self._sender.flush(timeout)

    async def aflush(self, timeout: float = 10.0) -> bool:
        """For async programs, before leaving the event loop: let LiteLLM finish its queued logging callbacks, then
        flush. Without it LiteLLM cancels the callbacks still in flight when the loop closes (for every logger)."""
        deadline = time.monotonic() + timeout
        worker = litellm_logging_worker()
        if worker is not None:
            try:
                await asyncio.wait_for(worker.flush(), timeout)
            except TimeoutError:
                logger.warning("litellm-mlflow: LiteLLM's logging callbacks did not finish within %.0fs", timeout)
        return await asyncio.to_thread(self.flush, max(0.0, deadline - time.monotonic()))

    def close(self, timeout: float = 10.0) -> bool:
        """Flush for shutdown; events that still arrive afterwards are sent before their hook returns."""
        return True if self._sender is None else self._sender.close(timeout)

    def stats(self) -> dict[str, int]:
        """Counters: enqueued, sent, retried, degraded/dropped_overflow, failed_permanently, pending, requests, ..."""
        base = {"enqueued": 0, "sent": 0, "retried": 0, "degraded_overflow": 0, "dropped_overflow": 0,
                "failed_permanently": 0, "pending": 0, "requests": 0, "failed_requests": 0}  # fmt: skip
        if self._sender is not None:
            base.update(self._sender.stats())
        base["missing_payload"] = self.missing_payload
        return base


_LOGGERS: weakref.WeakSet[SqsEventLogger] = weakref.WeakSet()


async def flush_all_loggers() -> None:
    """Drain every logger of this process that has published something (the proxy's shutdown calls this).

    A flush, not a close: if the process lives on (an app's lifespan in tests), logging simply continues.
    """
    for event_logger in [item for item in list(_LOGGERS) if item._sender is not None]:
        if not await event_logger.aflush(exit_flush_timeout()):
            logger.error("litellm-mlflow: not everything reached SQS at the proxy's shutdown: %s", event_logger.stats())


sqs_logger = SqsEventLogger()
proxy_shutdown.install(flush_all_loggers)
