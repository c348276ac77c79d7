"""The pipeline's MLflow side at a sustained call rate with the periodic rollup on, against a real local MLflow
server (sqlite): does the sink keep the rate while the rollup reads, does a pass stay bounded, does the rollup read
faster than calls arrive, and do the summaries count exactly the traces stored?

`python -m bench.bench_rollup_sustained [--rate 100] [--seconds 480] [--interval 60] [--writers 2]`: `--writers`
processes (deployed, each consumer Lambda is its own process) store `--rate` calls a second between them (one sink
batch a second each, timestamps = now, the bench_rollup mix) for `--seconds`; meanwhile a rollup pass runs every
`--interval` seconds in this process closing the open hour, as the local stack's demo does (so every pass after the
first re-reads the hour in progress, whose traces are all late: the worst case, a rebuild of every run each pass).
Each pass's read rate (traces read per second of reading, while the writers write) is what says whether a deployed
rollup keeps up: it reads each hour once, so it keeps up while that rate is above the call rate. At the end one more
pass, then the model-group runs' `total/requests` summed must equal the traces stored, and so must the team runs'.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import random
import sys
import tempfile
import time
from collections import Counter
from multiprocessing.connection import wait
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

from bench.bench_rollup import GROUPS, TEAMS, bench_event
from bench.common import median, write_result
from litellm_mlflow.rollup.rollup import Rollup
from litellm_mlflow.rollup.summary_runs import SUMMARY_KEY_TAG, SUMMARY_TAG

EXPERIMENT = "bench-rollup-sustained"


def write_at_rate(
    url: str, rate: int, seconds: float, stop: Event, out: Queue, writer: int = 0, writers: int = 1
) -> None:
    """One sink batch of `rate` calls a second, on a fixed schedule (a late batch is sent at once, not skipped); the
    stats go to `out`. Writer `writer` of `writers` numbers its calls so that no two writers share an event id."""
    from litellm_mlflow.sink import MlflowSink, SinkSettings

    stats = {"batch_s": [], "lag_s": 0.0, "failed": 0, "stored": 0, "reasons": Counter()}
    sink = MlflowSink(SinkSettings(url, EXPERIMENT))
    rng = random.Random(100 + writer)
    started = time.monotonic()
    batch = 0
    again: list = []  # a failed call goes back to SQS and comes with a later batch: redelivered, as deployed
    while again or (time.monotonic() - started < seconds and not stop.is_set()):
        due = started + batch
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)  # pacing the load, not synchronisation
        now = time.time()
        fresh = time.monotonic() - started < seconds and not stop.is_set()
        events = again + [
            bench_event((batch * rate + i) * writers + writer, now - 1 + i / rate, rng)
            for i in range(rate if fresh else 0)
        ]
        sent = time.perf_counter()
        result = sink.write(events)
        stats["batch_s"].append(time.perf_counter() - sent)
        stats["lag_s"] = max(stats["lag_s"], time.monotonic() - due)
        again = [events[index] for index in result.failed]
        stats["failed"] += len(again)
        stats["stored"] += len(events) - len(again)
        for reason in result.failed.values():
            stats["reasons"][reason[:120]] += 1
        batch += 1
    stats["elapsed_s"] = time.monotonic() - started
    out.put(stats)


def write_in_processes(url: str, rate: int, writers: int, seconds: float, stop: Event) -> tuple[list, Queue]:
    """`writers` processes sharing `rate` (the first ones take the remainder)."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    shares = [rate // writers + (1 if w < rate % writers else 0) for w in range(writers)]
    processes = [
        context.Process(target=write_at_rate, args=(url, share, seconds, stop, out, w, writers), daemon=True)
        for w, share in enumerate(shares)
    ]
    for process in processes:
        process.start()
    return processes, out


def merged_stats(parts: list[dict]) -> dict:
    return {
        "batch_s": [s for part in parts for s in part["batch_s"]],
        "lag_s": max(part["lag_s"] for part in parts),
        "failed": sum(part["failed"] for part in parts),
        "reasons": sum((part["reasons"] for part in parts), Counter()),
        "stored": sum(part["stored"] for part in parts),
        "elapsed_s": max(part["elapsed_s"] for part in parts),
    }


def rollup_pass(client, experiment_id: str) -> tuple[float, object]:
    started = time.perf_counter()
    report = Rollup(client, experiment_id, grace_s=900).run(now_s=time.time() + 3600 + 900)  # closes the open hour
    return time.perf_counter() - started, report


def summary_totals(client, experiment_id: str) -> dict[str, float]:
    """Sum of the latest `total/requests` over the model-group runs and over the team runs (one run per key)."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{SUMMARY_KEY_TAG}` LIKE '%'", max_results=1000)
    keys = [run.data.tags[SUMMARY_KEY_TAG] for run in runs]
    assert len(keys) == len(set(keys)) == len(GROUPS) + len(TEAMS), f"{len(keys)} summary runs"
    totals = {"model_group": 0.0, "team": 0.0}
    for run in runs:
        totals[run.data.tags[SUMMARY_TAG]] += run.data.metrics.get("total/requests", 0.0)
    return totals


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=480)
    parser.add_argument("--interval", type=float, default=60, help="0: no pass until the writer is done (baseline)")
    parser.add_argument("--writers", type=int, default=2, help="writer processes sharing --rate (consumer Lambdas)")
    parser.add_argument("--result", default="rollup_sustained", help="bench/results/<RESULT>.json")
    args = parser.parse_args(argv)
    command = "python -m bench.bench_rollup_sustained " + " ".join(sys.argv[1:] if argv is None else argv)
    from mlflow import MlflowClient

    from litellm_mlflow.local.servers import MlflowServer

    # The SageMaker header plugin cannot read a local http URI and says so on every request (as in rollup/service.py).
    logging.getLogger("mlflow.tracking.request_header.registry").setLevel(logging.ERROR)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as workdir, MlflowServer(Path(workdir)) as server:
        client = MlflowClient(server.url)
        experiment_id = client.create_experiment(EXPERIMENT)
        stop = multiprocessing.get_context("spawn").Event()
        processes, out = write_in_processes(server.url, args.rate, args.writers, args.seconds, stop)
        passes = []
        try:
            next_pass = time.monotonic() + args.interval
            while args.interval and (alive := [p for p in processes if p.is_alive()]):
                if (remaining := next_pass - time.monotonic()) > 0:
                    wait([p.sentinel for p in alive], timeout=remaining)  # a writer ending, or the next pass due
                    continue
                passes.append(rollup_pass(client, experiment_id))
                next_pass = time.monotonic() + args.interval
                wall, report = passes[-1]
                print(f"  pass {len(passes)}: {wall:.1f} s, {report.traces_read} traces read in "
                      f"{report.read_seconds:.1f} s, {len(report.runs_rebuilt)} runs rebuilt", flush=True)  # fmt: skip
        except BaseException:
            stop.set()
            raise
        finally:
            parts = [out.get(timeout=args.seconds + 600) for _ in processes]
            for process in processes:
                process.join()
        stats = merged_stats(parts)
        final = [rollup_pass(client, experiment_id) for _ in range(2)]  # the last batches' late marks, then a no-op
        totals = summary_totals(client, experiment_id)
    stored = stats["stored"]
    notes = [f"sink failures (written again with a later batch): {dict(stats['reasons'])}"] if stats["reasons"] else []
    notes += [
        f"The {args.writers} writer processes, the rollup and the MLflow server (sqlite) share this machine's"
        f" {os.cpu_count()} vCPUs with other jobs: 1-minute load average {load_before:.1f} at the start,"
        f" {os.getloadavg()[0]:.1f} at the end.",
        "Every pass closes the open hour (as the local demo does), so each re-reads the hour so far and rebuilds every"
        " run; deployed, an hour is read once, 15 minutes after it ends (bench_rollup measures that read)."
        if passes
        else "Baseline: no pass while the writer runs; the first pass after it reads every call once.",
    ]
    assert totals == {"model_group": stored, "team": stored}, (totals, stored)
    walls = [wall for wall, _ in passes]
    rates = [r.traces_read / r.read_seconds for _, r in passes if r.read_seconds > 0]
    rows = [
        {"metric": "calls stored", "ours": stored, "unit": "calls", "note": f"{stats['failed']} failed, sent again"},
        {"metric": "achieved write rate", "ours": round(stored / stats["elapsed_s"], 1), "unit": "calls/s",
         "target": f">= {args.rate}"},
        {"metric": "sink batch time (one batch a second), median", "ours": round(median(stats["batch_s"]), 3),
         "unit": "s"},
        {"metric": "sink batch time, slowest", "ours": round(max(stats["batch_s"]), 3), "unit": "s"},
        {"metric": "writer's worst lag behind its schedule", "ours": round(stats["lag_s"], 2), "unit": "s"},
        {"metric": "final pass (late marks of the last batches)", "ours": round(final[0][0], 1), "unit": "s"},
        {"metric": "model-group runs' total/requests minus calls stored", "ours": totals["model_group"] - stored,
         "unit": "calls", "target": 0},
        {"metric": "team runs' total/requests minus calls stored", "ours": totals["team"] - stored, "unit": "calls",
         "target": 0},
    ]  # fmt: skip
    if passes:
        rows[5:5] = [
            {"metric": f"rollup pass every {args.interval:.0f} s re-reading the open hour, median",
             "ours": round(median(walls), 1), "unit": "s", "note": f"{len(walls)} passes"},
            {"metric": "rollup pass, slowest", "ours": round(max(walls), 1), "unit": "s",
             "target": f"< {args.interval:.0f}"},
            {"metric": "rollup read rate while the writers write, median", "ours": round(median(rates), 0),
             "unit": "traces/s",
             "note": f"slowest pass {min(rates):.0f}; {median(rates) / args.rate:.1f}x the call rate",
             "target": f"> {args.rate}"},
        ]  # fmt: skip
    title = f"Sustained {args.rate} calls/s with the periodic rollup" + ("" if args.interval else " off (baseline)")
    write_result(args.result, title, command.strip(), rows, 1, extra={"notes": notes})
    return {"rows": rows}


if __name__ == "__main__":
    main()
