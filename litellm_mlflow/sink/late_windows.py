"""Marks the hours a batch stored traces into after the usage rollup started reading them, so it re-reads them.

The rollup sets the experiment tag `litellm_mlflow.rollup.closing_hour` before it reads an hour. After its traces
are confirmed stored, the consumer reads that tag: a trace of an hour at or before it may have been missed (SQS
retries, a redrive from the dead-letter queue, an MLflow outage), so the consumer sets `litellm_mlflow.late.<hour>`
and the next rollup pass re-reads that hour and corrects the summaries if a figure changed. No clock is compared:
the check comes after the write and the rollup's read after its mark. Cost: one read of the experiment per batch,
one tag write per late hour.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from litellm_mlflow.events import LLMCallEvent
from litellm_mlflow.rollup.state import CLOSING_TAG, late_tag
from litellm_mlflow.rollup.windows import hour_of


@dataclass
class LateWindowMarker:
    client: Any
    experiment_id: str
    requests_sent: int = 0

    def closing_hour(self) -> int | None:
        self.requests_sent += 1
        value = self.client.get_experiment(self.experiment_id).tags.get(CLOSING_TAG)
        return int(value) if value else None

    def mark(self, events: Iterable[LLMCallEvent]) -> list[int]:
        """Tag every hour among these stored events that the rollup may have read already (raises MlflowException
        if MLflow cannot be asked or refuses)."""
        hours = sorted({hour_of(event.start_time).index for event in events})
        if not hours:
            return []
        closing = self.closing_hour()
        late = [hour for hour in hours if closing is not None and hour <= closing]
        now_ms = str(int(time.time() * 1000))
        for hour in late:
            self.requests_sent += 1
            self.client.set_experiment_tag(self.experiment_id, late_tag(hour), now_ms)
        return late
