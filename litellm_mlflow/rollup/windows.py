"""Closed time windows (hour, day) and where their points sit on MLflow's axes.

A window's step is its index since the epoch (hours since 1970 for hours, days for days), so MLflow's default
step axis reads as consecutive windows and a window always maps to the same step; its timestamp is the window's
start, so the time axis reads too. A window is closed once its end plus a grace period has passed: the grace covers
the normal path from a call to its stored trace (SQS batching, consumer retries); a trace stored after its hour was
read is a late event and reopens the hour (see state.py and sink/late_windows.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Period(StrEnum):
    HOUR = "hour"
    DAY = "day"

    @property
    def seconds(self) -> int:
        return 3600 if self is Period.HOUR else 86400


@dataclass(frozen=True, order=True)
class Window:
    """One window: `index` counts periods since the epoch (the metric step)."""

    period: Period
    index: int

    @property
    def start_s(self) -> int:
        return self.index * self.period.seconds

    @property
    def end_s(self) -> int:
        return self.start_s + self.period.seconds

    @property
    def start_ms(self) -> int:
        return self.start_s * 1000

    @property
    def end_ms(self) -> int:
        return self.end_s * 1000

    @property
    def step(self) -> int:
        return self.index

    def hours(self) -> list[Window]:
        """The hour windows a window covers (itself for an hour)."""
        if self.period is Period.HOUR:
            return [self]
        first = self.start_s // 3600
        return [Window(Period.HOUR, first + i) for i in range(24)]

    def day(self) -> Window:
        return Window(Period.DAY, self.start_s // 86400)

    @property
    def is_last_hour_of_day(self) -> bool:
        return self.period is Period.HOUR and self.index % 24 == 23


def hour_of(epoch_s: float) -> Window:
    return Window(Period.HOUR, int(epoch_s // 3600))


def last_closed_hour(now_s: float, grace_s: float) -> int:
    """Index of the newest hour whose end + grace is at or before `now_s`."""
    return int((now_s - grace_s) // 3600) - 1
