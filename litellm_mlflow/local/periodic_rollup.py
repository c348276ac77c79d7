"""The local stack's usage rollup: the scheduled Lambda's job as a thread, one pass every `interval_s`.

`run_now(close_open_hour=True)` also closes the hour in progress (the demo uses it so the summary runs show the
calls it just made): a call of that hour stored afterwards is a late event like any other, marked by the consumer
and corrected by the next pass.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from litellm_mlflow.rollup.rollup import Rollup, RollupReport
from litellm_mlflow.rollup.service import apply_client_defaults
from litellm_mlflow.rollup.state import grace_seconds

logger = logging.getLogger(__name__)


@dataclass
class PeriodicRollup:
    tracking_uri: str
    experiment: str
    interval_s: float = 60.0
    grace_s: float = field(default_factory=grace_seconds)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def run_now(self, close_open_hour: bool = False) -> RollupReport:
        """One pass (nothing to do while the experiment does not exist)."""
        from mlflow import MlflowClient

        apply_client_defaults()
        client = MlflowClient(self.tracking_uri)
        experiment = client.get_experiment_by_name(self.experiment)
        if experiment is None:
            return RollupReport()
        now = time.time() + (3600 + self.grace_s if close_open_hour else 0)
        with self._lock:
            return Rollup(client, experiment.experiment_id, grace_s=self.grace_s).run(now_s=now)

    def start(self) -> PeriodicRollup:
        self._thread = threading.Thread(target=self._loop, name="usage-rollup", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_now()
            except Exception:  # the next pass retries; the stack keeps running
                logger.exception("usage rollup pass failed")
