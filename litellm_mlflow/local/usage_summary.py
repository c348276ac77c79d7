"""The demo's usage summary: the figures the consumer's CloudWatch metrics carry, totalled over the demo's batches.

Fed by `litellm_mlflow.sink.usage_emf.add_listener`, so the numbers are the very `BatchUsage` objects the consumer
computed for its EMF documents (stored calls only, once per event), not a second count.
"""

from __future__ import annotations

import threading

from litellm_mlflow.usage_metrics import BatchUsage, UsageFigures


class UsageTotals:
    """A usage listener that sums every batch (the consumer runs in a background thread)."""

    def __init__(self) -> None:
        self.usage = BatchUsage()
        self._lock = threading.Lock()

    def subscribe(self) -> UsageTotals:
        from litellm_mlflow.sink.usage_emf import add_listener  # the sink (and mlflow) load only when the demo runs

        add_listener(self)
        return self

    def unsubscribe(self) -> None:
        from litellm_mlflow.sink.usage_emf import remove_listener

        remove_listener(self)

    def __call__(self, batch: BatchUsage) -> None:
        with self._lock:
            self.usage.merge(batch)

    def lines(self) -> list[str]:
        with self._lock:
            groups, teams = dict(self.usage.by_model_group), dict(self.usage.by_team)
        out = ["  usage metrics (what CloudWatch would get):"]
        out += [_line("model group", name, figures) for name, figures in sorted(groups.items())] or [
            "    no calls stored yet"
        ]
        out += [_line("team", name, figures) for name, figures in sorted(teams.items())] or [
            "    by team: none (calls made with the proxy's master key carry no team)"
        ]
        return out


def _line(kind: str, name: str, figures: UsageFigures) -> str:
    return (
        f"    {kind} {name:<24} calls {figures.calls:>4}  errors {figures.errors:>3} "
        f"({figures.error_rate_percent:>3.0f}%)  tokens {figures.input_tokens}/{figures.output_tokens}  "
        f"cost {_cost(figures)}"
    )


def _cost(figures: UsageFigures) -> str:
    """Unpriced calls are unknown, not free: a group of only those says so instead of showing $0."""
    if figures.unpriced_calls and figures.unpriced_calls == figures.calls - figures.errors:
        return f"unknown ({figures.unpriced_calls} unpriced call(s))"
    priced = f"${figures.cost_usd:.6f}"
    return f"{priced} + {figures.unpriced_calls} unpriced call(s)" if figures.unpriced_calls else priced
