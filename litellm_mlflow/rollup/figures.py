"""The figures of one window for one summary (a model group or a team), and how windows combine.

`WindowPartial` is everything a window's figures are computed from: counts, token and cost sums, and log-bucket
sketches of latency and time to first token. Partials merge exactly (24 hours make a day), encode to a short JSON
string (kept as a run tag until the day is written) and give the percentiles within 1% (bucket width 2%), so an hour
and the day it belongs to are computed the same way and a recomputation gives the very same numbers.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field

SKETCH_GAMMA = 1.02
_LOG_GAMMA = math.log(SKETCH_GAMMA)
_MIN_MS = 0.01  # values below (and 0) share bucket 0's floor


@dataclass
class Sketch:
    """A DDSketch-style histogram: bucket i holds values in (gamma^(i-1), gamma^i] ms."""

    buckets: Counter[int] = field(default_factory=Counter)

    def add(self, value_ms: float) -> None:
        self.buckets[math.ceil(math.log(max(value_ms, _MIN_MS)) / _LOG_GAMMA)] += 1

    def merge(self, other: Sketch) -> None:
        self.buckets.update(other.buckets)

    @property
    def count(self) -> int:
        return sum(self.buckets.values())

    def quantile(self, q: float) -> float | None:
        """The nearest-rank q-quantile, as the midpoint of its bucket (None when empty)."""
        total = self.count
        if not total:
            return None
        rank = max(1, math.ceil(q * total))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return round(2 * SKETCH_GAMMA**index / (SKETCH_GAMMA + 1), 3)
        raise AssertionError("unreachable: rank <= total")

    def encode(self) -> dict[str, int]:
        return {str(index): count for index, count in sorted(self.buckets.items())}

    @classmethod
    def decode(cls, data: dict[str, int]) -> Sketch:
        return cls(Counter({int(index): int(count) for index, count in data.items()}))


@dataclass(frozen=True)
class CallRecord:
    """What the rollup needs of one stored trace."""

    model_group: str
    team: str | None
    ok: bool
    latency_ms: float
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None


@dataclass
class WindowPartial:
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_nano_usd: int = 0  # integer sums: the same calls in any order give the same figures
    unpriced: int = 0
    latency: Sketch = field(default_factory=Sketch)
    ttft: Sketch = field(default_factory=Sketch)

    def add(self, call: CallRecord) -> None:
        self.requests += 1
        self.errors += 0 if call.ok else 1
        self.input_tokens += call.input_tokens or 0
        self.output_tokens += call.output_tokens or 0
        if call.cost_usd is None:
            self.unpriced += 1 if call.ok else 0
        else:
            self.cost_nano_usd += round(call.cost_usd * 1e9)
        self.latency.add(call.latency_ms)
        if call.ttft_ms is not None:
            self.ttft.add(call.ttft_ms)

    def merge(self, other: WindowPartial) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_nano_usd += other.cost_nano_usd
        self.unpriced += other.unpriced
        self.latency.merge(other.latency)
        self.ttft.merge(other.ttft)

    def figures(self) -> dict[str, float]:
        """The window's metric values by name (percentiles left out when the window has none)."""
        values: dict[str, float | None] = {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.errors / self.requests if self.requests else 0.0,
            "latency_p50_ms": self.latency.quantile(0.50),
            "latency_p95_ms": self.latency.quantile(0.95),
            "ttft_p50_ms": self.ttft.quantile(0.50),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_nano_usd / 1e9,
            "unpriced_requests": self.unpriced,
        }
        return {name: float(value) for name, value in values.items() if value is not None}

    def encode(self) -> str:
        data = {
            "n": self.requests, "e": self.errors, "i": self.input_tokens, "o": self.output_tokens,
            "c": self.cost_nano_usd, "u": self.unpriced, "l": self.latency.encode(), "t": self.ttft.encode(),
        }  # fmt: skip
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> WindowPartial:
        data = json.loads(text)
        return cls(
            requests=int(data["n"]), errors=int(data["e"]), input_tokens=int(data["i"]),
            output_tokens=int(data["o"]), cost_nano_usd=int(data["c"]), unpriced=int(data["u"]),
            latency=Sketch.decode(data["l"]), ttft=Sketch.decode(data["t"]),
        )  # fmt: skip


TOTAL_FIGURES = ("requests", "errors", "input_tokens", "output_tokens", "cost_usd")


def running_totals(previous: dict[str, float], window: WindowPartial) -> dict[str, float]:
    """Totals through this window: the previous window's totals plus this window's sums."""
    figures = window.figures()
    return {name: round(previous.get(name, 0.0) + figures[name], 9) for name in TOTAL_FIGURES}
