"""What the sender counts, and its warnings about trouble, summarised so a long outage does not flood the log."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

logger = logging.getLogger("litellm_mlflow.publish.sender")

LOG_EVERY_S = 10.0  # repeated warnings (overflow, outage) are summarised at most this often
COUNTERS = ("enqueued", "sent", "retried", "degraded_overflow", "dropped_overflow", "failed_permanently", "requests",
            "failed_requests")  # fmt: skip


class SenderStats:
    """Counters shared by the caller's thread and the sender's threads; `add` is atomic, reads are plain."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.enqueued = 0
        self.sent = 0
        self.retried = 0
        self.degraded_overflow = 0  # kept without prompts and responses because the buffer was full
        self.dropped_overflow = 0
        self.failed_permanently = 0
        self.requests = 0
        self.failed_requests = 0
        self._last_log: dict[str, float] = {}

    def add(self, name: str, count: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + count)

    @property
    def pending(self) -> int:
        """Events submitted but neither sent nor given up on (buffered or in flight)."""
        return self.enqueued - self.sent - self.failed_permanently

    def snapshot(self) -> dict[str, int]:
        values = {name: getattr(self, name) for name in COUNTERS}
        values["pending"] = self.pending
        return values

    def log_throttled(self, topic: str, level: int, message: str, *args: Any) -> None:
        """Log at most once per LOG_EVERY_S per topic ("overflow", "outage"), with the counters appended."""
        now = time.monotonic()
        if now - self._last_log.get(topic, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._last_log[topic] = now
            logger.log(level, "litellm-mlflow: " + message + " [stats: %s]", *args, self.snapshot())
