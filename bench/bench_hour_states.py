"""What keeping a month of hour states costs the rollup: tag size, and the time of loading the summary runs.

A late trace is corrected from the runs' hour states (run tags `litellm_mlflow.hour.<index>`): the day it falls in is
the merge of its 24 hours. Keeping those states for the queue's and the dead-letter queue's retention (30 days, 720
hours) instead of 2 days (48) means no late trace ever needs a day of traces read again; this measures what it costs.

`python -m bench.bench_hour_states [--runs 5] [--summaries 20] [--versions 3.0.1,pinned]`: per MLflow version, a
fresh server (sqlite) with --summaries summary runs, each given 48 then 720 hour states of a busy hour (360,000
calls of one model group, lognormal latencies, streamed, so both sketches are full: the largest state the rollup
keeps), then `SummaryRuns.load` (what every pass starts with) timed --runs times, interleaved, and the rebuild of
one run holding 30 days of points (what correcting a late trace costs a run). Also the state's size packed (what is
stored) and in WindowPartial's plain encoding (what was stored before).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from mlflow.entities import Metric

from bench.common import median, write_result
from litellm_mlflow.rollup.figures import CallRecord, WindowPartial, running_totals
from litellm_mlflow.rollup.summary_runs import HOUR_TAG_PREFIX, HourState, Kind, SummaryKey, SummaryRuns

KEPT_BEFORE, KEPT_NOW = 48, 720
BUSY_HOUR = 360_000


def busy_state(calls: int = BUSY_HOUR, sigma: float = 0.8, seed: int = 1) -> HourState:
    rng = random.Random(seed)
    partial = WindowPartial()
    for _ in range(calls):
        latency = rng.lognormvariate(math.log(1500), sigma)
        partial.add(CallRecord("chat", "team", rng.random() > 0.02, latency, latency * rng.uniform(0.05, 0.3),
                               1000, 200, 0.0123))  # fmt: skip
    return HourState(partial, running_totals({"requests": 1e9, "cost_usd": 12345.678912345}, partial))


def plain_size(state: HourState) -> int:
    return len('{"w":' + state.partial.encode() + ',"T":{}}') + len(str(state.totals))


def load_seconds(client, experiment_id: str) -> float:
    started = time.perf_counter()
    runs = SummaryRuns(client, experiment_id)
    runs.load()
    return time.perf_counter() - started


def measure_version(version: str, summaries: int, repeats: int, state: str) -> list[dict]:
    from mlflow import MlflowClient

    from litellm_mlflow.local.mlflow_versions import server_python
    from litellm_mlflow.local.servers import MlflowServer

    rows = []
    with tempfile.TemporaryDirectory() as workdir, MlflowServer(Path(workdir), python=server_python(version)) as server:
        client = MlflowClient(server.url)
        experiments = {}
        for kept in (KEPT_BEFORE, KEPT_NOW):
            experiment_id = client.create_experiment(f"states-{kept}")
            runs = SummaryRuns(client, experiment_id)
            first = 500_000
            for n in range(summaries):
                run = runs.get_or_create(SummaryKey(Kind.MODEL_GROUP, f"group-{n}"))
                runs.write(run, [], {f"{HOUR_TAG_PREFIX}{first + h}": state for h in range(kept)})
            experiments[kept] = experiment_id
        before, now = medians(load_seconds, client, experiments, repeats)
        rows.append({"metric": f"MLflow {version}: load {summaries} summary runs, {KEPT_NOW} vs {KEPT_BEFORE} hour "
                     "states each", "ours": round(now, 3), "baseline": round(before, 3), "unit": "s"})  # fmt: skip
        print(f"{version}: {before:.3f} s with {KEPT_BEFORE}, {now:.3f} s with {KEPT_NOW}", flush=True)
        before, now = medians(rebuild_seconds, client, experiments, repeats)
        rows.append({"metric": f"MLflow {version}: rebuild one run with 30 days of points "
                     f"({len(month_points())} points), {KEPT_NOW} vs {KEPT_BEFORE} hour states",
                     "ours": round(now, 3), "baseline": round(before, 3), "unit": "s"})  # fmt: skip
        print(f"{version}: rebuild {before:.3f} s with {KEPT_BEFORE}, {now:.3f} s with {KEPT_NOW}", flush=True)
    return rows


def medians(measure, client, experiments: dict[int, str], repeats: int) -> tuple[float, float]:
    """Median seconds of `measure` with the states kept before and now, the two experiments taken in turn."""
    timings: dict[int, list[float]] = {kept: [] for kept in experiments}
    for _ in range(repeats):
        for kept, experiment_id in experiments.items():
            timings[kept].append(measure(client, experiment_id))
    return median(timings[KEPT_BEFORE]), median(timings[KEPT_NOW])


def month_points() -> list[Metric]:
    """What a summary run holds after 30 days: 15 hour and total figures an hour, 10 day figures a day."""
    first = 500_000
    hourly = [Metric(f"hour/f{k}", float(h), (first + h) * 3_600_000, first + h) for h in range(720) for k in range(10)]
    totals = [Metric(f"total/f{k}", float(h), (first + h) * 3_600_000, first + h) for h in range(720) for k in range(5)]
    daily = [Metric(f"day/f{k}", float(d), (first // 24 + d) * 86_400_000, first // 24 + d)
             for d in range(30) for k in range(10)]  # fmt: skip
    return hourly + totals + daily


def rebuild_seconds(client, experiment_id: str) -> float:
    """One summary run replaced by a new one with a month of points and its hour states (a late trace's correction)."""
    runs = SummaryRuns(client, experiment_id)
    runs.load()
    run = runs.runs[min(runs.runs)]
    points: dict[str, dict[int, Metric]] = {}
    for point in month_points():
        points.setdefault(point.key, {})[point.step] = point
    tags = {k: v for k, v in run.tags.items() if k.startswith(HOUR_TAG_PREFIX)}
    started = time.perf_counter()
    runs.rebuild(run, points, tags)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict:
    from litellm_mlflow.local.mlflow_versions import PINNED_ALIAS, pinned_version

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--summaries", type=int, default=20)
    parser.add_argument("--versions", default="3.0.1,pinned")
    args = parser.parse_args(argv)
    command = "python -m bench.bench_hour_states " + " ".join(sys.argv[1:] if argv is None else argv)
    state = busy_state()
    text = state.encode()
    rows = [{"metric": f"hour state of a busy hour ({BUSY_HOUR:,} calls of one model group), packed vs plain",
             "ours": len(text), "baseline": plain_size(state), "unit": "chars",
             "target": "< 8000 (run tag limit, 3.0-3.17)"}]  # fmt: skip
    wide = busy_state(60_000, sigma=2.5, seed=2).encode()
    rows.append({"metric": "hour state, latencies spread over 6 decades (sigma 2.5)", "ours": len(wide),
                 "unit": "chars", "target": "< 8000"})  # fmt: skip
    for version in args.versions.split(","):
        version = pinned_version() if version.strip() == PINNED_ALIAS else version.strip()
        rows += measure_version(version, args.summaries, args.runs, text)
    notes = [f"1-minute load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} vCPUs shared."]
    write_result("hour_states", "Usage rollup: keeping 30 days of hour states", command.strip(), rows, args.runs,
                 extra={"notes": notes})  # fmt: skip
    return {"rows": rows}


if __name__ == "__main__":
    main()
