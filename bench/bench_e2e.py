"""End-to-end latency on the local stack: from the end of a LiteLLM call to its trace being visible in MLflow.

Real LiteLLM SDK calls (mock responses) through our callback -> local SQS -> the consumer (emulated event source
mapping, 0.5 s batching window) -> a local MLflow server, at a steady rate. A watcher polls MLflow every 100 ms and
notes when each call's trace first appears. In AWS the event source mapping's batching window (5 s by default in
this stack) adds to these figures. `python -m bench.bench_e2e [--runs 3] [--calls 150] [--rate 30]`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm.integrations.custom_logger import CustomLogger

from bench.common import median, percentile, write_result

EXPERIMENT = "bench-e2e"


class EndTimes(CustomLogger):
    """Records when each call ended (LiteLLM calls it with the finished call's payload)."""

    def __init__(self) -> None:
        super().__init__()
        self.ended: dict[str, float] = {}

    def log_success_event(self, kwargs, response_obj, start_time, end_time) -> None:
        self.ended[kwargs["standard_logging_object"]["litellm_call_id"]] = time.time()


def one_run(stack, recorder: EndTimes, experiment_id: str, calls: int, rate: float, tag: str) -> list[float]:
    """Latencies (seconds) of `calls` calls made at `rate` per second, from call end to visible in MLflow."""
    import litellm

    from litellm_mlflow.mlflow_queries import search_traces
    from litellm_mlflow.sink.trace_builder import trace_id_for

    recorder.ended.clear()
    seen: dict[str, float] = {}  # trace id -> when first seen
    give_up = threading.Event()

    def watch() -> None:
        while len(seen) < calls and not give_up.is_set():
            now = time.time()
            # Each run's calls go to their own model group (the trace name).
            for trace in search_traces(stack.mlflow.url, EXPERIMENT, f"trace.name = '{tag}'"):
                seen.setdefault(trace.info.trace_id, now)
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    interval = 1.0 / rate
    next_at = time.monotonic()
    for index in range(calls):
        litellm.completion(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"call {index}"}],
            mock_response="ok",
            metadata={"model_group": tag},
        )
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    watcher.join(timeout=120)
    give_up.set()
    # A call's trace id is derived from its event id, LiteLLM's call id (the OTLP path sets no client request id).
    ended = {trace_id_for(experiment_id, call_id): end for call_id, end in recorder.ended.items()}
    return [seen[trace_id] - end for trace_id, end in ended.items() if trace_id in seen]


def measure(runs: int, calls: int, rate: float, workdir: Path) -> list[list[float]]:
    """One local stack and one publisher for every run (LiteLLM keeps one logger instance of each class)."""
    import litellm

    from litellm_mlflow.local.demo import quiet_consumer_logs
    from litellm_mlflow.local.stack import LocalStack, LocalStackOptions
    from litellm_mlflow.mlflow_queries import experiment_id, search_traces
    from litellm_mlflow.publish.litellm_logger import SqsEventLogger

    quiet_consumer_logs()
    options = LocalStackOptions(workdir=workdir, experiment=EXPERIMENT, start_proxy=False, batching_window_s=0.5)
    with LocalStack(options) as stack:
        os.environ["AWS_ENDPOINT_URL_SQS"] = stack.sqs_endpoint
        os.environ["LITELLM_MLFLOW_QUEUE_URL"] = stack.queue_url
        recorder = EndTimes()
        publisher = SqsEventLogger()
        litellm.callbacks = [publisher, recorder]
        # Warm up: the consumer's first batch pays its cold start (experiment, server capabilities); not measured.
        litellm.completion(model="gpt-4o-mini", messages=[{"role": "user", "content": "warm-up"}], mock_response="ok")
        deadline = time.monotonic() + 120
        while not search_traces(stack.mlflow.url, EXPERIMENT) and time.monotonic() < deadline:
            time.sleep(0.1)
        experiment = experiment_id(stack.mlflow.url, EXPERIMENT)
        assert experiment is not None, "the warm-up call's trace never appeared in MLflow"
        results = [one_run(stack, recorder, experiment, calls, rate, tag=f"r{run}") for run in range(runs)]
        publisher.close(timeout=30)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=150)
    parser.add_argument("--rate", type=float, default=30.0, help="calls per second")
    args = parser.parse_args(argv)
    p50s, p99s, visible = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        all_runs = measure(args.runs, args.calls, args.rate, Path(tmp))
    for run, latencies in enumerate(all_runs):
        visible.append(len(latencies))
        p50s.append(percentile(latencies, 50))
        p99s.append(percentile(latencies, 99))
        print(f"run {run + 1}: {len(latencies)}/{args.calls} visible, p50 {p50s[-1]:.2f}s, p99 {p99s[-1]:.2f}s")
    rows = [
        {"metric": "call end -> visible in MLflow, p50", "ours": round(median(p50s), 2), "unit": "s"},
        {"metric": "call end -> visible in MLflow, p99", "ours": round(median(p99s), 2), "unit": "s"},
        {"metric": "calls visible", "ours": min(visible), "baseline": args.calls, "unit": "calls"},
    ]
    command = f"make bench  (python -m bench.bench_e2e --runs {args.runs} --calls {args.calls} --rate {args.rate:g})"
    notes = [
        f"{args.calls} calls at {args.rate:g}/s per run, after a warm-up call; the local event source emulator "
        "invokes as soon as the queue runs dry (window at most 0.5 s). The deployed mapping waits for its batching "
        "window (5 s by default) or a full batch, which adds up to that much in AWS."
    ]
    write_result("e2e", "End-to-end latency (local stack)", command, rows, runs=args.runs, extra={"notes": notes})
    return 0 if min(visible) == args.calls else 1


if __name__ == "__main__":
    sys.exit(main())
