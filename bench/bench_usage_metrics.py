"""The consumer's usage metrics: what emitting a batch's EMF documents costs, side by side with the plain
Powertools way (one `add_metric` call per value), on the same batch in the same run.

`python -m bench.bench_usage_metrics`: no servers, no AWS; the EMF lines go to a buffer.
"""

from __future__ import annotations

import contextlib
import io
import time

from aws_lambda_powertools.metrics import EphemeralMetrics

from bench.common import median, write_result
from litellm_mlflow import usage_metrics as names
from litellm_mlflow.events import LLMCallEvent
from litellm_mlflow.sink import usage_emf
from litellm_mlflow.usage_metrics import BatchUsage, batch_usage

CALLS, GROUPS, TEAMS, RUNS = 1000, 5, 10, 7


def batch() -> BatchUsage:
    events = [
        LLMCallEvent(
            event_id=f"e{i}",
            model=f"model-{i % GROUPS}",
            start_time=1000.0,
            end_time=1000.0 + (i % 97) / 100,
            status="success" if i % 7 else "failure",
            prompt_tokens=100,
            completion_tokens=40,
            cost_usd=0.0002,
            team_alias=f"team-{i % TEAMS}",
        )
        for i in range(CALLS)
    ]
    return batch_usage(events)


def emit_value_by_value(usage: BatchUsage) -> None:
    """The baseline: the same documents built with one documented `add_metric` call per value."""
    for group, figures in usage.by_model_group.items():
        for document in usage_emf._model_group_documents(figures):
            metrics = EphemeralMetrics(namespace=names.NAMESPACE, service="")
            metrics.add_dimension(name=names.MODEL_GROUP, value=group)
            for name, unit, value in document:
                metrics.add_metric(name=name, unit=unit, value=value)
            if metrics.metric_set:
                metrics.flush_metrics()
    for team, figures in usage.by_team.items():
        metrics = EphemeralMetrics(namespace=names.NAMESPACE, service="")
        metrics.add_dimension(name=names.TEAM, value=team)
        for name, unit, value in usage_emf._team_document(figures):
            metrics.add_metric(name=name, unit=unit, value=value)
        metrics.flush_metrics()


def timed(function, usage: BatchUsage) -> tuple[float, int]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        started = time.perf_counter()
        function(usage)
        elapsed = time.perf_counter() - started
    return elapsed, len(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    usage = batch()
    ours, baseline, size = [], [], 0
    for _ in range(RUNS):  # interleaved, so both see the same machine load
        seconds, size = timed(usage_emf.emit, usage)
        ours.append(seconds * 1000)
        baseline.append(timed(emit_value_by_value, usage)[0] * 1000)
    write_result(
        "usage_metrics",
        f"Usage EMF for one {CALLS}-call batch ({GROUPS} model groups, {TEAMS} teams)",
        "python -m bench.bench_usage_metrics",
        [
            {
                "metric": "usage EMF emission per batch (baseline: one add_metric call per value)",
                "ours": round(median(ours), 1),
                "baseline": round(median(baseline), 1),
                "unit": "ms",
            },
            {"metric": "EMF log bytes per batch", "ours": size, "unit": "bytes"},
        ],
        runs=RUNS,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
