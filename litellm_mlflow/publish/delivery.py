"""Delivering one batch: send until SQS has every entry, retrying with backoff, isolating a message SQS refuses.

A packed message SQS refuses as malformed is split at once into its events, each sent alone (and isolated the same
way), so one bad event never holds up the others it was packed with. Counters are in events, not messages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from litellm_mlflow.publish import retry_policy
from litellm_mlflow.publish.batching import SQS_MAX_BATCH_ENTRIES, Entry
from litellm_mlflow.publish.sender_stats import SenderStats

logger = logging.getLogger("litellm_mlflow.publish.sender")


class BatchDelivery:
    """`deliver(client, queue_url, batch)` returns when each entry is in SQS or was refused as malformed
    `SENDER_FAULT_ATTEMPTS` times (then counted as failed_permanently and logged). Safe to call from several
    threads at once with one shared boto3 client."""

    def __init__(
        self, stats: SenderStats, on_progress: Callable[[], None], sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._stats = stats
        self._on_progress = on_progress
        self._sleep = sleep

    def deliver(self, client: Any, queue_url: str, batch: list[Entry]) -> None:
        pending = {str(index): entry for index, entry in enumerate(batch)}
        attempt = 0
        while pending:
            if attempt:
                self._stats.add("retried", sum(entry.events for entry in pending.values()))
                self._sleep(retry_policy.backoff(attempt - 1))
            attempt += 1
            entries = [entry.request_entry(entry_id) for entry_id, entry in pending.items()]
            self._stats.add("requests")
            try:
                response = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
            except Exception as exc:
                self._stats.add("failed_requests")
                if retry_policy.is_message_fault(exc):
                    self._isolate_message_fault(client, queue_url, pending, exc)
                    return
                self._stats.log_throttled(
                    "outage", logging.WARNING, "SendMessageBatch failed (%s); %d event(s) will be retried",
                    exc, len(pending),
                )  # fmt: skip
                continue
            sent = 0
            for item in response.get("Successful", ()):
                entry = pending.pop(item["Id"], None)
                sent += entry.events if entry is not None else 0
            self._stats.add("sent", sent)
            split: list[Entry] = []
            for failure in response.get("Failed", ()):
                split.extend(self._entry_failed(pending, failure))
            self._deliver_alone(client, queue_url, split)
            if pending:
                self._stats.log_throttled(
                    "outage", logging.WARNING, "SQS rejected %d of %d entries; retrying", len(pending), len(entries)
                )
            self._on_progress()

    def _isolate_message_fault(self, client: Any, queue_url: str, pending: dict[str, Entry], exc: Exception) -> None:
        """A message made the whole call fail: resend one by one so only the culprit can end up rejected."""
        if len(pending) > 1:
            for entry in pending.values():
                self.deliver(client, queue_url, [entry])
            return
        (entry_id, entry), *_ = pending.items()
        failure = {"Id": entry_id, "SenderFault": True, "Code": retry_policy.error_code(exc), "Message": str(exc)}
        split = self._entry_failed(pending, failure)
        if split:
            self._deliver_alone(client, queue_url, split)
        elif pending:
            self._stats.add("retried")
            self._sleep(retry_policy.backoff(entry.sender_faults))
            self.deliver(client, queue_url, [entry])

    def _deliver_alone(self, client: Any, queue_url: str, entries: list[Entry]) -> None:
        """The events of refused packed messages, each its own message (10 to a call)."""
        for start in range(0, len(entries), SQS_MAX_BATCH_ENTRIES):
            self.deliver(client, queue_url, entries[start : start + SQS_MAX_BATCH_ENTRIES])

    def _entry_failed(self, pending: dict[str, Entry], failure: Mapping[str, Any]) -> tuple[Entry, ...]:
        """Count a refusal; a refused packed message leaves `pending` and its events are returned, to go alone."""
        entry = pending.get(failure.get("Id", ""))
        if entry is None or not failure.get("SenderFault"):
            return ()  # server-side (throttling, internal error): retried as long as it takes
        if entry.parts:
            pending.pop(failure["Id"])
            logger.warning(
                "litellm-mlflow: SQS refused a message of %d packed events (%s); sending them one by one",
                entry.events, failure.get("Code"),
            )  # fmt: skip
            return entry.parts
        entry.sender_faults += 1
        if entry.sender_faults >= retry_policy.SENDER_FAULT_ATTEMPTS:
            pending.pop(failure["Id"])
            self._stats.add("failed_permanently")
            logger.error(
                "litellm-mlflow: SQS rejected event %s %d times (%s: %s); it is LOST. Check the queue's "
                "MaximumMessageSize against LITELLM_MLFLOW_MAX_MESSAGE_BYTES.",
                entry.event_id,
                entry.sender_faults,
                failure.get("Code"),
                failure.get("Message"),
            )
        return ()
