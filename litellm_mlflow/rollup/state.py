"""The rollup's progress and the reopened windows, kept as tags of the experiment.

- `litellm_mlflow.rollup.through_hour`: every hour up to this index is written to the summary runs.
- `litellm_mlflow.rollup.closing_hour`: set before the rollup starts reading an hour. After storing a batch, the
  consumer reads it: a trace of an hour at or before it may have been missed by that read, so the consumer sets
- `litellm_mlflow.late.<hour>` (epoch ms). A trace is thus either in the rollup's read or marked, whatever the
  clocks say: the read starts after the closing mark, and the consumer looks after its own write.
- `litellm_mlflow.checked.<hour>`: when the rollup last started re-reading that hour (epoch ms).
- `litellm_mlflow.rollup.states_since`: the oldest hour from which the summary runs hold every hour state (set once:
  a rollup that kept hour states 2 days had deleted the older ones, and a day missing states cannot be corrected).
An hour is reopened while its late mark is not older than its last check (minus a margin for clock skew). Marks
are never deleted before they are checked (3.0 servers cannot delete experiment tags at all), so a mark written
while the rollup re-reads is never lost: it only causes one more (idempotent) check.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from mlflow.exceptions import MlflowException

logger = logging.getLogger(__name__)

THROUGH_TAG = "litellm_mlflow.rollup.through_hour"
CLOSING_TAG = "litellm_mlflow.rollup.closing_hour"
LATE_PREFIX = "litellm_mlflow.late."
CHECKED_PREFIX = "litellm_mlflow.checked."
GRACE_ENV = "LITELLM_MLFLOW_ROLLUP_GRACE_SECONDS"
DEFAULT_GRACE_S = 900.0
STATES_SINCE_TAG = "litellm_mlflow.rollup.states_since"
CLOCK_MARGIN_S = 60.0
# Marks older than this are dropped once checked: the queue and the dead-letter queue keep a message 14 days each, so
# a redriven event can be up to 28 days late (rollup.py KEEP_HOUR_STATES covers them).
MARK_RETENTION_HOURS = 31 * 24
# How long the rollup kept hour states before it kept them a month: an experiment it rolled up then has none older.
EARLIER_KEPT_HOURS = 48


def grace_seconds(environ: dict[str, str] | None = None) -> float:
    """How long after its end an hour is closed (late traces are still corrected; this only makes them rare)."""
    raw = ((environ if environ is not None else os.environ).get(GRACE_ENV) or "").strip()
    return float(raw) if raw else DEFAULT_GRACE_S


def late_tag(hour_index: int) -> str:
    return f"{LATE_PREFIX}{hour_index}"


@dataclass
class RollupState:
    client: Any
    experiment_id: str
    through_hour: int | None = None
    states_since: int | None = None
    late: dict[int, int] = field(default_factory=dict)
    checked: dict[int, int] = field(default_factory=dict)

    @classmethod
    def load(cls, client: Any, experiment_id: str) -> RollupState:
        tags = client.get_experiment(experiment_id).tags
        state = cls(client, experiment_id)
        if THROUGH_TAG in tags:
            state.through_hour = int(tags[THROUGH_TAG])
        if STATES_SINCE_TAG in tags:
            state.states_since = int(tags[STATES_SINCE_TAG])
        for prefix, target in ((LATE_PREFIX, state.late), (CHECKED_PREFIX, state.checked)):
            for key, value in tags.items():
                if key.startswith(prefix):
                    target[int(key[len(prefix) :])] = int(float(value))
        return state

    def reopened(self, clock_margin_s: float = CLOCK_MARGIN_S) -> list[int]:
        """Hours already written that a late trace may have changed (rechecked until a check starts more than
        the clock margin after the hour's last mark)."""
        if self.through_hour is None:
            return []
        margin_ms = int(clock_margin_s * 1000)
        return sorted(
            hour
            for hour, marked in self.late.items()
            if hour <= self.through_hour and (hour not in self.checked or marked >= self.checked[hour] - margin_ms)
        )

    def ensure_states_since(self) -> None:
        """Record once from which hour every hour state is kept: all of them in a new experiment, the last
        EARLIER_KEPT_HOURS in one an earlier rollup wrote (it deleted the states before those)."""
        if self.states_since is not None:
            return
        since = 0 if self.through_hour is None else self.through_hour - EARLIER_KEPT_HOURS + 1
        self.client.set_experiment_tag(self.experiment_id, STATES_SINCE_TAG, str(since))
        self.states_since = since

    def oldest_kept_hour(self, keep_hours: int) -> int:
        """The oldest hour whose states every summary run still holds (states are kept `keep_hours`)."""
        since = self.states_since or 0
        return since if self.through_hour is None else max(since, self.through_hour - keep_hours + 1)

    def set_closing(self, hour_index: int) -> None:
        self.client.set_experiment_tag(self.experiment_id, CLOSING_TAG, str(hour_index))

    def set_through(self, hour_index: int) -> None:
        self.client.set_experiment_tag(self.experiment_id, THROUGH_TAG, str(hour_index))
        self.through_hour = hour_index

    def set_checked(self, hour_index: int, started_ms: int) -> None:
        self.client.set_experiment_tag(self.experiment_id, f"{CHECKED_PREFIX}{hour_index}", str(started_ms))
        self.checked[hour_index] = started_ms

    def prune(self, newest_hour: int) -> None:
        """Drop marks and checks of hours past retention (servers before 3.4 cannot; they keep them)."""
        oldest = newest_hour - MARK_RETENTION_HOURS
        for prefix, marks in ((LATE_PREFIX, self.late), (CHECKED_PREFIX, self.checked)):
            for hour in [h for h in marks if h < oldest]:
                try:
                    self.client.delete_experiment_tag(self.experiment_id, f"{prefix}{hour}")
                except MlflowException as exc:
                    logger.info("experiment tag %s%s kept: %s", prefix, hour, str(exc)[:200])
                    return
                marks.pop(hour)
