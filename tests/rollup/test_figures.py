"""Window figures: percentiles from the sketch within 1%, exact merges, a stable encoding."""

from __future__ import annotations

import random

from litellm_mlflow.rollup.figures import CallRecord, Sketch, WindowPartial, running_totals
from litellm_mlflow.rollup.windows import Period, Window, hour_of, last_closed_hour


def call(latency: float, ok: bool = True, cost: float | None = 0.002, ttft: float | None = None) -> CallRecord:
    tokens = (100, 20) if ok else (None, None)
    return CallRecord("chat", "search", ok, latency, ttft, *tokens, cost if ok else None)


def test_sketch_percentiles_are_within_one_percent_of_the_exact_ones() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(6, 1.2) for _ in range(20_000)]
    sketch = Sketch()
    for value in values:
        sketch.add(value)
    ordered = sorted(values)
    for q in (0.5, 0.95, 0.99):
        exact = ordered[max(0, int(q * len(ordered) + 0.999999) - 1)]
        assert abs(sketch.quantile(q) - exact) <= 0.0101 * exact


def test_partials_merge_to_the_partial_of_all_calls_and_survive_encoding() -> None:
    calls = [call(100 + i, ok=i % 5 != 0, cost=None if i % 7 == 0 else 0.002, ttft=30.0 + i) for i in range(48)]
    whole, first, second = WindowPartial(), WindowPartial(), WindowPartial()
    for index, record in enumerate(calls):
        whole.add(record)
        (first if index < 20 else second).add(record)
    first.merge(WindowPartial.decode(second.encode()))
    assert first.encode() == whole.encode()
    figures = whole.figures()
    assert figures["requests"] == 48 and figures["errors"] == 10 and figures["error_rate"] == 10 / 48
    assert figures["input_tokens"] == 38 * 100 and figures["output_tokens"] == 38 * 20
    priced = [c for c in calls if c.cost_usd is not None]
    assert figures["unpriced_requests"] == 38 - len(priced)
    assert abs(figures["cost_usd"] - 0.002 * len(priced)) < 1e-9
    assert abs(figures["ttft_p50_ms"] - 53) <= 0.6


def test_an_empty_window_has_counts_but_no_percentiles() -> None:
    figures = WindowPartial().figures()
    assert figures["requests"] == 0 and figures["error_rate"] == 0
    assert "latency_p50_ms" not in figures and "ttft_p50_ms" not in figures


def test_running_totals_add_the_window_to_the_previous_totals() -> None:
    window = WindowPartial()
    window.add(call(10.0))
    assert running_totals({"requests": 4, "cost_usd": 0.5}, window)["requests"] == 5
    assert running_totals({}, window)["cost_usd"] == 0.002


def test_windows_sit_on_readable_steps_and_close_after_the_grace_period() -> None:
    hour = hour_of(1_765_000_000.5)
    assert hour.step == 1_765_000_000 // 3600 and hour.start_ms == hour.step * 3_600_000
    assert hour.day() == Window(Period.DAY, 1_765_000_000 // 86400)
    assert len(hour.day().hours()) == 24 and hour.day().hours()[-1].is_last_hour_of_day
    assert last_closed_hour(hour.end_s + 899, grace_s=900) == hour.index - 1
    assert last_closed_hour(hour.end_s + 900, grace_s=900) == hour.index


def test_partials_of_slices_cut_anywhere_merge_to_the_same_figures_and_percentiles() -> None:
    rng = random.Random(14)
    calls = [call(rng.lognormvariate(6, 1.5), ok=rng.random() > 0.1, ttft=rng.choice([None, rng.uniform(5, 900)]))
             for _ in range(3000)]  # fmt: skip
    whole = WindowPartial()
    for record in calls:
        whole.add(record)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(calls)), rng.randint(1, 59)))
        merged = WindowPartial()
        for start, end in zip([0, *cuts], [*cuts, len(calls)], strict=True):
            part = WindowPartial()
            for record in calls[start:end]:
                part.add(record)
            merged.merge(WindowPartial.decode(part.encode()))  # as saved in a run tag and read back
        assert merged.encode() == whole.encode() and merged.figures() == whole.figures()
