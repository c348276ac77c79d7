"""A background SQS publisher that never blocks the producer and never drops an event without counting it.

`submit()` is what runs on the caller's thread: one lock-protected deque append. A daemon dispatcher thread encodes
(the encode function is injected, so this module knows nothing about LiteLLM), packs up to `events_per_message`
events into one SQS message and 10 messages into one batch (`batching`); up to `max_in_flight` delivery threads send
them at once with one shared boto3 client (`delivery`, `retry_policy`, `sqs_client`), so throughput is about
`max_in_flight` x 10 x `events_per_message` events per round trip. When the buffer is
full, events lose their content before anything is dropped (`overflow`). `flush()` waits for everything submitted
so far, in flight included; at interpreter exit every live sender is flushed (`exit_hooks`).
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from litellm_mlflow.events import MAX_EVENTS_PER_MESSAGE, PACK_MAX_BYTES, pack_events, packable
from litellm_mlflow.publish import exit_hooks, retry_policy
from litellm_mlflow.publish.batching import SQS_MAX_BATCH_ENTRIES, Encoded, Entry, MessagePacker, pack_batch
from litellm_mlflow.publish.delivery import BatchDelivery
from litellm_mlflow.publish.overflow import OverflowPolicy
from litellm_mlflow.publish.sender_stats import SenderStats
from litellm_mlflow.publish.sqs_client import default_sqs_client

logger = logging.getLogger("litellm_mlflow.publish.sender")

DEFAULT_MAX_IN_FLIGHT = 16  # 16 x 10 events per round trip: ~4,000 events/s at 40 ms


class QueueNotConfiguredError(RuntimeError):
    """No queue URL: events are held in memory (and counted) until one is configured."""


@dataclass(frozen=True)
class _Prepared:
    """An already encoded entry put back in the buffer after an unexpected sender error."""

    entry: Entry


class SqsBatchSender:
    """Publishes submitted payloads to one SQS queue from background threads, `max_in_flight` requests at a time.

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
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        name: str = "litellm-mlflow-sqs-sender",
        events_per_message: int = 1,
        max_message_bytes: int = PACK_MAX_BYTES,
    ) -> None:
        """`events_per_message` > 1 packs small events (`events.pack_events`; the encode function must return
        `events.EncodedMessage`), at most `max_message_bytes` (and `events.PACK_MAX_BYTES`) of text a message."""
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be at least 1, got {buffer_size}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self._max_in_flight = max_in_flight
        self._events_per_message = min(max(1, events_per_message), MAX_EVENTS_PER_MESSAGE)
        self._max_message_bytes = min(max_message_bytes, PACK_MAX_BYTES)
        # Events that make a full SendMessageBatch: the dispatcher lingers for this many.
        self._full_batch = SQS_MAX_BATCH_ENTRIES * self._events_per_message
        self._overflow = OverflowPolicy(buffer_size)
        self._queue_url_value = queue_url
        self._encode = encode
        self._capacity = buffer_size
        self._linger_s = max(0.0, linger_s)
        self._client_factory = client_factory or default_sqs_client
        self._name = name
        self.reset_after_fork()
        exit_hooks.register(self)

    def reset_after_fork(self) -> None:
        """Fresh state: a forked worker inherits the parent's buffer but not its thread, and must not resend it."""
        self._lock = threading.Lock()
        self._progress = threading.Condition(threading.Lock())
        self._wakeup = threading.Event()
        self._buffer: collections.deque[Mapping[str, Any] | _Prepared] = collections.deque()
        self._thread: threading.Thread | None = None
        self._slots = threading.BoundedSemaphore(self._max_in_flight)
        self._batches: queue.SimpleQueue[tuple[Any, str, list[Entry]]] = queue.SimpleQueue()
        self._workers = 0
        self._in_flight = 0
        self._flushing = 0
        self._closing = False
        self._exit_flush_ok = True
        self._config_error: str | None = None
        self._stats = SenderStats()
        self._delivery = BatchDelivery(self._stats, self._notify_progress)
        packing = self._events_per_message > 1
        self._packer = MessagePacker(
            pack_events if packing else None, packable, self._events_per_message, self._max_message_bytes
        )

    # ------------------------------------------------------------------------------------------- caller's side

    def submit(self, payload: Mapping[str, Any]) -> bool:
        """O(1): buffer the payload for the sender thread. False (counted, logged) when it had to be dropped."""
        stats = self._stats
        with stats.lock:
            size = len(self._buffer)
            kept = payload if size < self._capacity else self._overflow.admit(size, payload)
            if kept is None:
                stats.dropped_overflow += 1
            else:
                self._buffer.append(kept)
                stats.enqueued += 1
                if kept is not payload:
                    stats.degraded_overflow += 1
        if kept is not payload:
            self._report_overflow(dropped=kept is None)
            if kept is None:
                return False
        if self._thread is None:
            self._start()
        # Wake the sender when it may be idle (first item) or a full batch is ready; otherwise it is lingering.
        if (size == 0 or (size + 1) % self._full_batch == 0) and not self._wakeup.is_set():
            self._wakeup.set()
        if self._closing and self._exit_flush_ok:
            # Only after the exit flush: a late event (e.g. LiteLLM's own exit-time drain) is sent before we return.
            self._exit_flush_ok = self.flush(timeout=exit_hooks.exit_flush_timeout())
        return True

    def _report_overflow(self, dropped: bool) -> None:
        """Loud, at most every LOG_EVERY_S each for the first shedding of content and the first dropped event."""
        self._stats.log_throttled(
            "overflow-drop" if dropped else "overflow", logging.ERROR,
            "event buffer full (%d events): so far %d event(s) kept WITHOUT prompts and responses and %d DROPPED "
            "(failures are kept longest). SQS is not keeping up or is unreachable (%s); raise "
            "LITELLM_MLFLOW_BUFFER_SIZE or fix the queue.",
            self._capacity, self._stats.degraded_overflow, self._stats.dropped_overflow,
            self._config_error or "see earlier warnings",
        )  # fmt: skip

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
        return self._stats.pending

    @property
    def has_events(self) -> bool:
        """True once anything was submitted (the exit hook flushes only such senders)."""
        return self._stats.enqueued > 0

    def stats(self) -> dict[str, int]:
        return self._stats.snapshot()

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
        """The dispatcher: take a free in-flight slot, wait briefly for a full batch, encode and pack it, hand it
        to a delivery thread. Retries happen on the delivery threads, so a slow batch never holds up the others."""
        client = None
        carry: Entry | None = None
        attempt = 0
        while True:
            if not self._buffer and carry is None and not self._packer.holding:
                self._wakeup.wait(1.0)
                self._wakeup.clear()
                continue
            self._slots.acquire()
            dispatched = False
            try:
                self._linger()
                try:
                    queue_url = self._queue_url()
                    if client is None:
                        client = self._client_factory(queue_url)
                except Exception as exc:
                    self._config_error = str(exc)
                    self._stats.log_throttled("outage", logging.ERROR, "cannot publish: %s", exc)
                    self._notify_progress()
                    time.sleep(retry_policy.backoff(attempt))
                    attempt = min(attempt + 1, 20)
                    continue
                self._config_error = None
                attempt = 0
                batch, carry = pack_batch(carry, self._next_message)
                if batch:
                    self._dispatch(client, queue_url, batch)
                    dispatched = True
            except Exception:  # a bug here must not end the thread
                logger.exception("litellm-mlflow: unexpected error in the SQS sender's dispatcher")
                time.sleep(retry_policy.backoff(3))
            finally:
                if not dispatched:
                    self._slots.release()
            self._notify_progress()

    def _dispatch(self, client: Any, queue_url: str, batch: list[Entry]) -> None:
        with self._lock:
            self._in_flight += 1
            start_worker = self._workers < self._in_flight
            if start_worker:
                self._workers += 1
        self._batches.put((client, queue_url, batch))
        if start_worker:
            threading.Thread(target=self._deliver_forever, name=f"{self._name}-{self._workers}", daemon=True).start()

    def _deliver_forever(self) -> None:
        """A delivery thread: send one batch at a time until SQS has it, then free its slot."""
        while True:
            client, queue_url, batch = self._batches.get()
            try:
                self._delivery.deliver(client, queue_url, batch)
            except Exception:  # a bug here must not end the thread: re-send the batch (at least once, never lost)
                logger.exception("litellm-mlflow: unexpected error in the SQS sender; the batch will be retried")
                self._requeue(batch)
                time.sleep(retry_policy.backoff(3))
            finally:
                with self._lock:
                    self._in_flight -= 1
                self._slots.release()
                self._wakeup.set()
                self._notify_progress()

    @property
    def in_flight(self) -> int:
        """SendMessageBatch calls (with their retries) under way now."""
        return self._in_flight

    def _requeue(self, batch: list[Entry]) -> None:
        # Entries are already encoded; keep them as ready-made messages ahead of newer payloads.
        for entry in reversed(batch):
            self._buffer.appendleft(_Prepared(entry))

    def _linger(self) -> None:
        """Wait briefly for a full batch (10 messages of `events_per_message` events) so a busy proxy sends few
        requests; never while flushing."""
        deadline = time.monotonic() + self._linger_s
        full = self._full_batch
        while len(self._buffer) < full and not self._flushing and not self._closing:
            self._wakeup.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or len(self._buffer) >= full:
                return
            self._wakeup.wait(remaining)

    def _queue_url(self) -> str:
        url = self._queue_url_value
        if not url:
            raise QueueNotConfiguredError(
                "LITELLM_MLFLOW_QUEUE_URL is not set; events are kept in memory (up to the buffer size), not sent"
            )
        return url

    def _next_message(self) -> Entry | None:
        """The next SQS message: several buffered events packed, or one alone; None when the buffer is empty."""
        return self._packer.next_message(self._next_entry)

    def _next_entry(self) -> Entry | None:
        """The next buffered event, encoded; None when the buffer is empty. Unencodable events are counted lost."""
        while True:
            try:
                payload = self._buffer.popleft()
            except IndexError:
                return None
            if isinstance(payload, _Prepared):
                return payload.entry
            entry = self._encode_entry(payload)
            if entry is not None:
                return entry

    def _encode_entry(self, payload: Mapping[str, Any]) -> Entry | None:
        event_id = str(payload.get("id") or payload.get("litellm_call_id") or "?")
        for tries in (1, 2):
            try:
                return Entry(event_id, self._encode(payload))
            except Exception as exc:  # a payload mutated while being read, or not serialisable at all
                if tries == 2:
                    self._stats.add("failed_permanently")
                    logger.exception("litellm-mlflow: event %s could not be encoded and is LOST: %s", event_id, exc)
        return None

    def _notify_progress(self) -> None:
        with self._progress:
            self._progress.notify_all()
