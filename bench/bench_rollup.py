"""The usage rollup's cost for one hour of traces, measured on a real local MLflow server (sqlite), and the metric
points it writes compared with the per-call points the consumer wrote before (one run per deployment).

`python -m bench.bench_rollup [--traces 20000] [--runs 3]`: starts its own MLflow server and loads --traces calls
(5 model groups, 10 teams, a third streamed, 5% failures) into one hour through the real sink (OTLP), then rolls
that hour up --runs times with the window read in 4 slices at once and in one (each pass re-reads and re-writes the
hour; identical points are ignored by MLflow).
`--tracking-uri URL --experiment NAME --hour H` measures an existing experiment instead of loading one.
The pass at 100 calls/s (360,000 traces an hour) is extrapolated linearly from the measured read rate.
`--pass-budget S` measures the resumable read instead (result `rollup_resumable`): the same hour written by one
uncut pass and by passes whose deadline is S s after they start (each stops starting slices then, saves what it
read, the next goes on), interleaved --runs times: traces read and read time in total, and the hour states (every
figure, sketches included) compared run by run.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from bench.common import median, write_result
from litellm_mlflow.events import LLMCallEvent
from litellm_mlflow.rollup.rollup import READ_WORKERS, Rollup
from litellm_mlflow.rollup.state import THROUGH_TAG
from litellm_mlflow.rollup.summary_runs import HOUR_TAG_PREFIX, SUMMARY_KEY_TAG

GROUPS = ("chat", "fast", "coder", "embed", "vision")
TEAMS = tuple(f"team-{i}" for i in range(10))
PER_HOUR_AT_100_PER_S = 360_000
# What the consumer logged per call before the rollup (latency, tokens x3, cost, error, cache hit; ttft for streams).
PER_CALL_POINTS = 7 + 1 / 3


def bench_event(i: int, start: float, rng: random.Random) -> LLMCallEvent:
    """Call `i` of the bench's mix (5 model groups, 10 teams, a third streamed, 5% failures), started at `start`."""
    ok = rng.random() > 0.05
    stream = i % 3 == 0
    return LLMCallEvent(
        event_id=f"bench-{i}",
        model=f"{GROUPS[i % 5]}-deployment",
        model_group=GROUPS[i % 5],
        start_time=start,
        end_time=start + rng.uniform(0.2, 4.0),
        status="success" if ok else "failure",
        prompt_tokens=rng.randint(10, 3000) if ok else None,
        completion_tokens=rng.randint(1, 500) if ok else None,
        cost_usd=0.001 if ok else None,
        team_alias=TEAMS[i % 10],
        stream=stream,
        completion_start_time=start + 0.15 if stream else None,
        messages=[{"role": "user", "content": "hello " * 40}],
        response={"choices": [{"message": {"role": "assistant", "content": "ok " * 30}}]},
    )


def load(url: str, experiment: str, traces: int, hour: int) -> None:
    from litellm_mlflow.sink import MlflowSink, SinkSettings

    sink = MlflowSink(SinkSettings(url, experiment))
    rng = random.Random(14)
    started = time.perf_counter()
    for first in range(0, traces, 500):
        if first and first % 20_000 == 0:
            print(f"  {first} traces stored, {first / (time.perf_counter() - started):.0f} traces/s", flush=True)
        events = [bench_event(i, hour * 3600 + 3600 * i / traces, rng) for i in range(first, min(traces, first + 500))]
        result = sink.write(events)
        assert not result.failed, next(iter(result.failed.values()))


def one_pass(client, experiment_id: str, hour: int, slices: int) -> tuple[float, float, object]:
    """(wall s, client CPU s, report) of a pass that re-reads and re-writes `hour`."""
    client.set_experiment_tag(experiment_id, THROUGH_TAG, str(hour - 1))
    rollup = Rollup(client, experiment_id, grace_s=900, read_workers=slices)
    started, cpu = time.perf_counter(), time.process_time()
    report = rollup.run(now_s=(hour + 1) * 3600 + 900)
    assert report.hours_written == [hour], report.hours_written
    return time.perf_counter() - started, time.process_time() - cpu, report


def measure(url: str, experiment: str, hour: int, runs: int, expected: int | None = None) -> list[dict]:
    from mlflow import MlflowClient

    client = MlflowClient(url)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    passes: dict[int, list] = {1: [], READ_WORKERS: []}
    for _ in range(runs):  # interleaved, so both see the same machine load
        for slices in passes:
            passes[slices].append(one_pass(client, experiment_id, hour, slices))
    ours, serial = passes[READ_WORKERS], passes[1]
    traces = ours[0][2].traces_read
    # The summaries' request counts must equal the traces stored, on every pass.
    assert expected is None or {report.traces_read for _, _, report in ours + serial} == {expected}, expected
    read_s = median([report.read_seconds for _, _, report in ours])
    serial_read_s = median([report.read_seconds for _, _, report in serial])
    write_s = median([report.write_seconds for _, _, report in ours])
    total_s = median([wall for wall, _, _ in ours])
    cpu_s = median([cpu for _, cpu, _ in ours])
    requests = ours[-1][2].requests_sent
    measured = traces >= PER_HOUR_AT_100_PER_S
    how = "measured" if measured else "extrapolated"
    at_target = total_s if measured else read_s * PER_HOUR_AT_100_PER_S / traces + (total_s - read_s)
    points = round((len(GROUPS) + len(TEAMS)) * (15 + 10 / 24))  # 10 hour figures + 5 totals an hour, 10 a day
    per_call = round(PER_HOUR_AT_100_PER_S * PER_CALL_POINTS)
    return [
        {"metric": "traces in the hour", "ours": traces, "unit": "traces"},
        {"metric": f"read the hour's trace infos ({READ_WORKERS} one-minute slices at once vs 1)",
         "ours": round(read_s, 2),
         "baseline": round(serial_read_s, 2), "unit": "s"},
        {"metric": "read rate", "ours": round(traces / read_s), "baseline": round(traces / serial_read_s),
         "unit": "traces/s"},
        {"metric": "write the summaries (15 runs)", "ours": round(write_s, 2), "unit": "s",
         "note": f"{requests} MLflow requests for the writes"},
        {"metric": "whole pass", "ours": round(total_s, 2), "unit": "s"},
        {"metric": "client CPU for the pass", "ours": round(cpu_s, 2), "unit": "s"},
        {"metric": f"pass for 360,000 traces/hour ({how})", "ours": round(at_target), "unit": "s",
         "target": "< 900 (Lambda)", "note": f"{at_target / 36:.1f}% of each hour"},
        {"metric": "summary metric points written per hour (15 runs)", "ours": points, "unit": "points/hour"},
        {"metric": "per-call metric points per hour before, at 100 calls/s", "ours": per_call, "unit": "points/hour",
         "note": f"{per_call // points:,}x the summaries"},
    ]  # fmt: skip


def hour_states(client, experiment_id: str, hour: int) -> dict[str, str]:
    """Every summary run's state of `hour`: its partial figures (sketches included) and running totals."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{SUMMARY_KEY_TAG}` LIKE '%'")
    return {run.info.run_name: run.data.tags.get(f"{HOUR_TAG_PREFIX}{hour}") for run in runs}


def cut_passes(client, experiment_id: str, hour: int, budget_s: float) -> dict:
    """Passes with a deadline `budget_s` after each starts, until one writes the hour."""
    client.set_experiment_tag(experiment_id, THROUGH_TAG, str(hour - 1))
    rollup = Rollup(client, experiment_id, grace_s=900)
    passes, traces, read_s, saved = 0, 0, 0.0, 0
    started = time.perf_counter()
    while True:
        passes += 1
        report = rollup.run(now_s=(hour + 1) * 3600 + 900, deadline=time.monotonic() + budget_s)
        traces, read_s, saved = traces + report.traces_read, read_s + report.read_seconds, saved + report.slices_saved
        print(f"  pass {passes}: {report.slices_read} slices read, {report.slices_reused} reused, "
              f"{report.slices_saved} saved, {report.read_seconds:.1f} s", flush=True)  # fmt: skip
        if report.hours_written:
            assert report.hours_written == [hour], report.hours_written
            return {"passes": passes, "traces": traces, "read_s": read_s, "wall_s": time.perf_counter() - started,
                    "saved": saved}  # fmt: skip
        assert passes < 1000, "no pass finished the hour"


def measure_resumable(url: str, experiment: str, hour: int, runs: int, budget_s: float, expected: int | None):
    from mlflow import MlflowClient

    client = MlflowClient(url)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    whole, cut = [], []
    for _ in range(runs):  # interleaved, so both see the same machine load
        wall, _, report = one_pass(client, experiment_id, hour, READ_WORKERS)
        whole.append({"traces": report.traces_read, "read_s": report.read_seconds, "wall_s": wall})
        reference = hour_states(client, experiment_id, hour)
        cut.append(cut_passes(client, experiment_id, hour, budget_s))
        assert hour_states(client, experiment_id, hour) == reference, "the cut passes wrote other figures"
    traces = {row["traces"] for row in whole + cut}
    assert len(traces) == 1 and (expected is None or traces == {expected}), (traces, expected)
    passes = [row["passes"] for row in cut]
    return [
        {"metric": "traces in the hour", "ours": traces.pop(), "unit": "traces"},
        {"metric": f"passes to write the hour, deadline {budget_s:g} s after each starts", "ours": median(passes),
         "baseline": 1, "unit": "passes", "note": f"per run: {passes}"},
        {"metric": "traces read in total (cut passes vs one pass)", "ours": median([r["traces"] for r in cut]),
         "baseline": median([r["traces"] for r in whole]), "unit": "traces", "note": "each slice read once"},
        {"metric": "read time in total (cut passes vs one pass)", "ours": round(median([r["read_s"] for r in cut]), 2),
         "baseline": round(median([r["read_s"] for r in whole]), 2), "unit": "s",
         "note": f"per run, cut: {[round(r['read_s'], 1) for r in cut]}; one pass: "
                 f"{[round(r['read_s'], 1) for r in whole]}; the cut passes' time includes saving the slices"},
        {"metric": "wall time in total (cut passes vs one pass)", "ours": round(median([r["wall_s"] for r in cut]), 2),
         "baseline": round(median([r["wall_s"] for r in whole]), 2), "unit": "s"},
        {"metric": "slices saved for a later pass", "ours": median([r["saved"] for r in cut]), "unit": "slices",
         "note": "of 60"},
        {"metric": "hour states (every figure) equal to the uncut pass's", "ours": "yes", "unit": "",
         "note": f"checked on each of the {runs} runs"},
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tracking-uri")
    parser.add_argument("--experiment", default="bench-rollup")
    parser.add_argument("--hour", type=int, default=int(time.time() // 3600) - 48)
    parser.add_argument("--result", help="bench/results/<RESULT>.json (default rollup, rollup_resumable with "
                        "--pass-budget; rollup_hour: the 360k run)")  # fmt: skip
    parser.add_argument("--pass-budget", type=float, help="seconds: measure the hour cut into passes of this budget")
    args = parser.parse_args(argv)
    args.result = args.result or ("rollup_resumable" if args.pass_budget else "rollup")
    command = "python -m bench.bench_rollup " + " ".join(sys.argv[1:] if argv is None else argv)

    def measured(url: str, expected: int | None = None) -> list[dict]:
        if args.pass_budget:
            return measure_resumable(url, args.experiment, args.hour, args.runs, args.pass_budget, expected)
        return measure(url, args.experiment, args.hour, args.runs, expected)

    if args.tracking_uri:
        rows = measured(args.tracking_uri)
        load_row = []
    else:
        from litellm_mlflow.local.servers import MlflowServer

        with tempfile.TemporaryDirectory() as workdir, MlflowServer(Path(workdir)) as server:
            started = time.perf_counter()
            load(server.url, args.experiment, args.traces, args.hour)
            load_s = time.perf_counter() - started
            print(f"loaded {args.traces} traces in {load_s:.0f} s", flush=True)
            rows = measured(server.url, expected=args.traces)
            load_row = [{"metric": "load: traces stored through the sink (one writer, batches of 500)",
                         "ours": round(args.traces / load_s), "unit": "traces/s", "target": ">= 100"}]  # fmt: skip
    load_avg = os.getloadavg()[0]
    notes = [f"1-minute load average at the end: {load_avg:.1f} on {os.cpu_count()} vCPUs shared with other jobs."]
    title = "Usage rollup: one hour of traces" + (f" ({args.traces:,})" if args.result != "rollup" else "")
    if args.pass_budget:
        title = f"Usage rollup: one hour of {args.traces:,} traces in passes of {args.pass_budget:g} s vs one pass"
    write_result(args.result, title, command.strip(), rows + load_row, args.runs, extra={"notes": notes})
    return {"rows": rows}


if __name__ == "__main__":
    main()
