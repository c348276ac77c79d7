"""A background SQS publisher that never blocks the producer and never drops an event without counting it.

`submit()` is what runs on the caller's thread: one lock-protected deque append. A daemon thread does the rest:
encodes (the encode function is injected, so this module knows nothing about LiteLLM), packs up to 10 entries
within SQS's 1 MiB batch limit, calls `SendMessageBatch` with one lazily created boto3 client, and retries
entries SQS reports as failed and whole calls that fail, with exponential backoff and jitter. `flush()` waits
for everything submitted so far; at interpreter exit every live sender is flushed.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import random
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

logger = logging.getLogger("litellm_mlflow.publish.sender")

SQS_MAX_BATCH_ENTRIES = 10
SQS_MAX_BATCH_BYTES = 1_048_576  # the sum of all entries of one SendMessageBatch
SENDER_FAULT_ATTEMPTS = 5  # an entry SQS rejects as malformed this often is reported as lost, loudly
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 5.0
LOG_EVERY_S = 10.0  # repeated warnings (overflow, outage) are summarised at most this often
_SQS_HOST_REGION = re.compile(r"sqs[.-]([a-z0-9-]+)\.amazonaws\.com")
# Whole-call errors caused by a message itself (retrying the same batch cannot help; the culprit is isolated).
# Every other error (outage, throttling, credentials, missing queue) is retried for as long as it takes.
_MESSAGE_FAULT_CODES = frozenset(
    {"InvalidParameterValue", "InvalidMessageContents", "BatchRequestTooLong", "MessageTooLong",
     "InvalidAttributeName", "InvalidAttributeValue"}
)  # fmt: skip


class Encoded(Protocol):
    """What the encode function returns (`events.EncodedMessage` satisfies it)."""

    body: str
    attributes: dict[str, dict[str, str]]
    size: int


class QueueNotConfiguredError(RuntimeError):
    """No queue URL: events are held in memory (and counted) until one is configured."""


@dataclass
class _Entry:
    event_id: str
    message: Encoded
    sender_faults: int = 0


@dataclass(frozen=True)
class _Prepared:
    """An already encoded entry put back in the buffer after an unexpected sender error."""

    entry: _Entry


class SqsBatchSender:
    """Publishes submitted payloads to one SQS queue from a background thread.

    Without a `queue_url` nothing is sent: events are buffered and counted, and `flush()` reports False, so a
    misconfigured proxy keeps serving and says why.
    """

    def __init__(
        self,
        *,
        queue_url: str | None,
        encode: Callable[[Mapping[str, Any]], Encoded],
        buffer_size: int = 10_000,
        linger_s: float = 0.1,
        client_factory: Callable[[str], Any] | None = None,
        name: str = "litellm-mlflow-sqs-sender",
    ) -> None:
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be at least 1, got {buffer_size}")
        self._queue_url_value = queue_url
        self._encode = encode
        self._capacity = buffer_size
        self._linger_s = max(0.0, linger_s)
        self._client_factory = client_factory or default_sqs_client
        self._name = name
        self._reset_state()
        _LIVE_SENDERS.add(self)

    def _reset_state(self) -> None:
        self._lock = threading.Lock()
        self._progress = threading.Condition(threading.Lock())
        self._wakeup = threading.Event()
        self._buffer: collections.deque[Mapping[str, Any]] = collections.deque()
        self._thread: threading.Thread | None = None
        self._flushing = 0
        self._closing = False
        self._exit_flush_ok = True
        self._config_error: str | None = None
        self._last_overflow_log = 0.0
        self._last_outage_log = 0.0
        self.enqueued = 0
        self.sent = 0
        self.retried = 0
        self.dropped_overflow = 0
        self.failed_permanently = 0
        self.requests = 0
        self.failed_requests = 0

    # ------------------------------------------------------------------------------------------- caller's side

    def submit(self, payload: Mapping[str, Any]) -> bool:
        """O(1): buffer the payload for the sender thread. False (counted, logged) when the buffer is full."""
        with self._lock:
            size = len(self._buffer)
            if size >= self._capacity:
                self.dropped_overflow += 1
                accepted = False
            else:
                self._buffer.append(payload)
                self.enqueued += 1
                accepted = True
        if not accepted:
            self._report_overflow()
            return False
        if self._thread is None:
            self._start()
        # Wake the sender when it may be idle (first item) or a full batch is ready; otherwise it is lingering.
        if (size == 0 or (size + 1) % SQS_MAX_BATCH_ENTRIES == 0) and not self._wakeup.is_set():
            self._wakeup.set()
        if self._closing and self._exit_flush_ok:
            # Only after the exit flush: a late event (e.g. LiteLLM's own exit-time drain) is sent before we return.
            self._exit_flush_ok = self.flush(timeout=exit_flush_timeout())
        return True

    def _report_overflow(self) -> None:
        now = time.monotonic()
        if now - self._last_overflow_log >= LOG_EVERY_S:
            self._last_overflow_log = now
            logger.error(
                "litellm-mlflow: event buffer full (%d events): %d event(s) DROPPED so far. SQS is not keeping up "
                "or is unreachable (%s); raise LITELLM_MLFLOW_BUFFER_SIZE or fix the queue.",
                self._capacity,
                self.dropped_overflow,
                self._config_error or "see earlier warnings",
            )

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------------------------------- control

    @property
    def pending(self) -> int:
        """Events submitted but neither sent nor given up on (buffered or in flight)."""
        return self.enqueued - self.sent - self.failed_permanently

    def stats(self) -> dict[str, int]:
        return {
            "enqueued": self.enqueued,
            "sent": self.sent,
            "retried": self.retried,
            "dropped_overflow": self.dropped_overflow,
            "failed_permanently": self.failed_permanently,
            "pending": self.pending,
            "requests": self.requests,
            "failed_requests": self.failed_requests,
        }

    def flush(self, timeout: float = 10.0) -> bool:
        """Send everything submitted so far; True when nothing is pending, False on timeout or missing config."""
        if self.pending <= 0:
            return True
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            self._flushing += 1
        try:
            self._wakeup.set()
            with self._progress:
                while self.pending > 0:
                    if self._config_error is not None:
                        return False
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._progress.wait(min(remaining, 0.05))
            return True
        finally:
            with self._lock:
                self._flushing -= 1

    def close(self, timeout: float = 10.0) -> bool:
        """Flush, then switch to exit mode: anything submitted afterwards is flushed before `submit` returns."""
        done = self.flush(timeout)
        self._exit_flush_ok = done
        self._closing = True
        if not done:
            logger.error(
                "litellm-mlflow: %d event(s) could not be sent to SQS before shutdown (%s); stats: %s",
                self.pending,
                self._config_error or f"not delivered within {timeout:.0f}s",
                self.stats(),
            )
        return done

    # ------------------------------------------------------------------------------------------- sender thread

    def _run(self) -> None:
        client = None
        carry: _Entry | None = None
        attempt = 0
        while True:
            if not self._buffer and carry is None:
                self._wakeup.wait(1.0)
                self._wakeup.clear()
                continue
            self._linger()
            try:
                queue_url = self._queue_url()
                if client is None:
                    client = self._client_factory(queue_url)
            except Exception as exc:
                self._config_error = str(exc)
                self._log_outage("cannot publish: %s", exc, level=logging.ERROR)
                self._notify_progress()
                time.sleep(_backoff(attempt))
                attempt = min(attempt + 1, 20)
                continue
            self._config_error = None
            attempt = 0
            batch: list[_Entry] = []
            try:
                batch, carry = self._take_batch(carry)
                if batch:
                    self._send(client, queue_url, batch)
            except Exception:  # a bug here must not end the thread: re-send the batch (at least once, never lost)
                logger.exception("litellm-mlflow: unexpected error in the SQS sender; the batch will be retried")
                self._requeue(batch)
                time.sleep(_backoff(3))
            self._notify_progress()

    def _requeue(self, batch: list[_Entry]) -> None:
        # Entries are already encoded; keep them as ready-made messages ahead of newer payloads.
        for entry in reversed(batch):
            self._buffer.appendleft(_Prepared(entry))

    def _linger(self) -> None:
        """Wait briefly for a full batch so a busy proxy sends ~1 request per 10 events; never while flushing."""
        deadline = time.monotonic() + self._linger_s
        while len(self._buffer) < SQS_MAX_BATCH_ENTRIES and not self._flushing and not self._closing:
            self._wakeup.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or len(self._buffer) >= SQS_MAX_BATCH_ENTRIES:
                return
            self._wakeup.wait(remaining)

    def _queue_url(self) -> str:
        url = self._queue_url_value
        if not url:
            raise QueueNotConfiguredError(
                "LITELLM_MLFLOW_QUEUE_URL is not set; events are kept in memory (up to the buffer size), not sent"
            )
        return url

    def _take_batch(self, carry: _Entry | None) -> tuple[list[_Entry], _Entry | None]:
        """Up to 10 encoded entries whose sizes sum to at most 1 MiB; an entry that does not fit is carried over."""
        batch: list[_Entry] = []
        total = 0
        while len(batch) < SQS_MAX_BATCH_ENTRIES:
            if carry is not None:
                entry, carry = carry, None
            else:
                try:
                    payload = self._buffer.popleft()
                except IndexError:
                    break
                entry = payload.entry if isinstance(payload, _Prepared) else self._encode_entry(payload)
                if entry is None:
                    continue
            if batch and total + entry.message.size > SQS_MAX_BATCH_BYTES:
                return batch, entry
            batch.append(entry)
            total += entry.message.size
        return batch, carry

    def _encode_entry(self, payload: Mapping[str, Any]) -> _Entry | None:
        event_id = str(payload.get("id") or payload.get("litellm_call_id") or "?")
        for tries in (1, 2):
            try:
                return _Entry(event_id, self._encode(payload))
            except Exception as exc:  # a payload mutated while being read, or not serialisable at all
                if tries == 2:
                    with self._lock:
                        self.failed_permanently += 1
                    logger.exception("litellm-mlflow: event %s could not be encoded and is LOST: %s", event_id, exc)
        return None

    def _send(self, client: Any, queue_url: str, batch: list[_Entry]) -> None:
        """Send until every entry is delivered or rejected too often as malformed; retries back off with jitter."""
        pending = {str(index): entry for index, entry in enumerate(batch)}
        attempt = 0
        while pending:
            if attempt:
                with self._lock:
                    self.retried += len(pending)
                time.sleep(_backoff(attempt - 1))
            attempt += 1
            entries = [
                {"Id": entry_id, "MessageBody": entry.message.body, "MessageAttributes": entry.message.attributes}
                for entry_id, entry in pending.items()
            ]
            self.requests += 1
            try:
                response = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
            except Exception as exc:
                self.failed_requests += 1
                if _error_code(exc) in _MESSAGE_FAULT_CODES:
                    self._isolate_message_fault(client, queue_url, pending, exc)
                    return
                self._log_outage("SendMessageBatch failed (%s); %d event(s) will be retried", exc, len(pending))
                continue
            delivered = [item["Id"] for item in response.get("Successful", ())]
            for entry_id in delivered:
                pending.pop(entry_id, None)
            with self._lock:
                self.sent += len(delivered)
            for failure in response.get("Failed", ()):
                self._entry_failed(pending, failure)
            if pending:
                self._log_outage("SQS rejected %d of %d entries; retrying", len(pending), len(entries))
            self._notify_progress()

    def _isolate_message_fault(self, client: Any, queue_url: str, pending: dict[str, _Entry], exc: Exception) -> None:
        """A message made the whole call fail: resend one by one so only the culprit can end up rejected."""
        if len(pending) > 1:
            for entry in pending.values():
                self._send(client, queue_url, [entry])
            return
        (entry_id, entry), *_ = pending.items()
        failure = {"Id": entry_id, "SenderFault": True, "Code": _error_code(exc), "Message": str(exc)}
        self._entry_failed(pending, failure)
        if pending:
            with self._lock:
                self.retried += 1
            time.sleep(_backoff(entry.sender_faults))
            self._send(client, queue_url, [entry])

    def _entry_failed(self, pending: dict[str, _Entry], failure: Mapping[str, Any]) -> None:
        entry = pending.get(failure.get("Id", ""))
        if entry is None or not failure.get("SenderFault"):
            return  # server-side (throttling, internal error): retried as long as it takes
        entry.sender_faults += 1
        if entry.sender_faults >= SENDER_FAULT_ATTEMPTS:
            pending.pop(failure["Id"])
            with self._lock:
                self.failed_permanently += 1
            logger.error(
                "litellm-mlflow: SQS rejected event %s %d times (%s: %s); it is LOST. Check the queue's "
                "MaximumMessageSize against LITELLM_MLFLOW_MAX_MESSAGE_BYTES.",
                entry.event_id,
                entry.sender_faults,
                failure.get("Code"),
                failure.get("Message"),
            )

    def _log_outage(self, message: str, *args: Any, level: int = logging.WARNING) -> None:
        now = time.monotonic()
        if now - self._last_outage_log >= LOG_EVERY_S:
            self._last_outage_log = now
            logger.log(level, "litellm-mlflow: " + message + " [stats: %s]", *args, self.stats())

    def _notify_progress(self) -> None:
        with self._progress:
            self._progress.notify_all()


def _error_code(exc: Exception) -> str:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code") or "")
    return code.rsplit(".", 1)[-1]  # "AWS.SimpleQueueService.BatchRequestTooLong" -> "BatchRequestTooLong"


def _backoff(attempt: int) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped."""
    delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2**attempt))
    return delay / 2 + random.uniform(0, delay / 2)


def default_sqs_client(queue_url: str, endpoint_url: str | None = None) -> Any:
    """One boto3 SQS client from boto3's own environment (region, credentials, AWS_ENDPOINT_URL_SQS).

    With no region configured, the region is taken from a standard queue URL (https://sqs.<region>.amazonaws.com/).
    """
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    region = session.region_name
    if region is None:
        match = _SQS_HOST_REGION.search(queue_url)
        region = match.group(1) if match else None
    config = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 3})
    return session.client("sqs", region_name=region, endpoint_url=endpoint_url, config=config)


def exit_flush_timeout() -> float:
    """How long exit-time flushes may wait for SQS (LITELLM_MLFLOW_EXIT_FLUSH_TIMEOUT_S, default 30 s)."""
    try:
        return float(os.environ.get("LITELLM_MLFLOW_EXIT_FLUSH_TIMEOUT_S", "30"))
    except ValueError:
        return 30.0


_LIVE_SENDERS: weakref.WeakSet[SqsBatchSender] = weakref.WeakSet()


def litellm_logging_worker() -> Any:
    """LiteLLM's global async logging worker, if LiteLLM is loaded (it runs every async logging callback)."""
    import sys

    module = sys.modules.get("litellm.litellm_core_utils.logging_worker")
    return getattr(module, "GLOBAL_LOGGING_WORKER", None)


def drain_litellm_logging_worker(max_rounds: int = 50) -> None:
    """Run LiteLLM's pending async logging callbacks now, so their events reach our buffer before we flush.

    LiteLLM drains that queue in an atexit handler registered when litellm is imported, i.e. before ours, so it
    would run after our flush; and one drain stops after 200 callbacks or 5 s. Repeating it until the queue is
    empty fixes both (it is idempotent). Callbacks LiteLLM had already started are cancelled when the event loop
    closes and never reach any logger; async programs avoid that with `await logger.aflush()`.
    """
    worker = litellm_logging_worker()
    flush_on_exit = getattr(worker, "_flush_on_exit", None)
    if not callable(flush_on_exit):
        return
    for _ in range(max_rounds):
        queue = getattr(worker, "_queue", None)
        if queue is None or queue.empty():
            return
        before = queue.qsize()
        try:
            flush_on_exit()
        except Exception:
            logger.exception("litellm-mlflow: draining LiteLLM's logging worker at exit failed")
            return
        if queue.qsize() >= before:
            return


@atexit.register
def _flush_all_at_exit() -> None:
    senders = [sender for sender in list(_LIVE_SENDERS) if sender.enqueued]
    if not senders:
        return
    drain_litellm_logging_worker()
    for sender in senders:
        sender.close(timeout=exit_flush_timeout())


def _reset_after_fork() -> None:
    # A forked worker (gunicorn/uvicorn workers) inherits the buffer but not the thread: start clean.
    for sender in list(_LIVE_SENDERS):
        sender._reset_state()


os.register_at_fork(after_in_child=_reset_after_fork)
