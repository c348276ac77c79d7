"""`make soak`: proof under faults. Many concurrent callers make LiteLLM calls through our callback while the local
pipeline (callback -> local SQS -> consumer -> local MLflow) is hit by: MLflow killed and restarted, the SQS endpoint
down for a while, duplicated deliveries, poison messages, and one consumer invocation killed mid-batch. At the end
MLflow's own API must show every good event exactly once with the right tokens and cost, per-model metric points equal
to the good events, and the DLQ must hold exactly the poison messages. Prints a table; exits non-zero on any loss or
duplicate.

    python -m bench.soak                 # 10,000 events, every fault (BENCHMARKS.md figures)
    python -m bench.soak --events 1000 --mlflow-restarts 0 --sqs-outage 5   # the small one in `make test`
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from litellm_mlflow.local.demo import quiet_consumer_logs
from litellm_mlflow.local.event_source import Handler
from litellm_mlflow.local.servers import SqsServer, exit_cleanly_on_sigterm, offline_env
from litellm_mlflow.local.stack import LocalStack, LocalStackOptions
from litellm_mlflow.local.stack_state import REGION
from litellm_mlflow.local.wiring import FAKE_CREDENTIALS

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = "soak"
POISON_BODIES = (
    "this is not JSON",
    "[1, 2, 3]",
    '{"schema": "litellm-mlflow/1", "event": {"id": "no-model-or-times"}}',
    "H4sIAAAAAAAA/wrongbase64!!",
    '{"schema": "someone-else/9", "event": {}}',
)


@dataclass
class SoakConfig:
    events: int = 10_000
    workers: int = 4
    threads: int = 8
    fail_share: float = 0.05
    stream_share: float = 0.15
    long_share: float = 0.005
    duplicate_share: float = 0.01
    poison_share: float = 0.005
    mlflow_restarts: int = 2
    sqs_outage_s: float = 20.0
    kill_one_invocation: bool = True
    visibility_timeout_s: int = 10
    max_receive_count: int = 8
    batch_size: int = 500
    max_backoff_s: float = 8.0
    timeout_s: float = 1500.0
    workdir: Path | None = None


@dataclass
class SoakReport:
    config: dict
    expected_events: int = 0
    duplicates_published: int = 0
    poison_sent: int = 0
    traces_found: int = 0
    missing: int = 0
    duplicated: int = 0
    unexpected: int = 0
    wrong_figures: int = 0
    metric_points: int = 0
    metric_mismatches: int = 0
    dlq_messages: int = 0
    dlq_not_poison: int = 0
    dlq_poison_distinct: int = 0  # poison messages in the DLQ, each counted once
    callback_dropped: int = 0
    consumer_invocations: int = 0
    consumer_crashes: int = 0
    mlflow_restarts_done: int = 0
    sqs_outage_s: float = 0.0
    calls_seconds: float = 0.0
    drain_seconds: float = 0.0
    total_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class InvocationKilled(RuntimeError):
    """Stands in for a Lambda invocation that died mid-batch (timeout, OOM, crash)."""


def kill_one_invocation(handler: Handler, min_records: int = 6, skip: int = 1) -> tuple[Handler, dict]:
    """A handler that, once, writes half a batch and then dies: nothing is acknowledged, all of it comes back."""
    state = {"seen": 0, "killed": False}

    def wrapped(event: dict, context: Any) -> Any:
        records = event.get("Records", [])
        if not state["killed"] and len(records) >= min_records:
            state["seen"] += 1
            if state["seen"] > skip:
                state["killed"] = True
                handler({"Records": records[: len(records) // 2]}, context)
                raise InvocationKilled(f"soak: invocation killed after writing {len(records) // 2} of {len(records)}")
        return handler(event, context)

    return wrapped, state


def start_workers(config: SoakConfig, stack: LocalStack, outdir: Path) -> list[tuple[subprocess.Popen, Path]]:
    env = {
        **os.environ,
        **offline_env(),
        **FAKE_CREDENTIALS,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_SQS": stack.sqs_endpoint,
        "LITELLM_MLFLOW_QUEUE_URL": stack.queue_url,
        "LITELLM_MLFLOW_EXIT_FLUSH_TIMEOUT_S": "120",
        "PYTHONPATH": str(REPO),
    }
    per_worker = math.ceil(config.events / config.workers)
    workers = []
    for index in range(config.workers):
        calls = min(per_worker, config.events - index * per_worker)
        out = outdir / f"worker-{index}.jsonl"
        cmd = [
            sys.executable, "-m", "bench.soak_worker",
            "--calls", str(calls), "--threads", str(config.threads), "--seed", str(index + 1), "--out", str(out),
            "--fail-share", str(config.fail_share), "--stream-share", str(config.stream_share),
            "--long-share", str(config.long_share), "--duplicate-share", str(config.duplicate_share),
        ]  # fmt: skip
        log = open(outdir / f"worker-{index}.log", "wb")  # noqa: SIM115 - closed when the worker is reaped
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        workers.append((proc, out))
    return workers


def send_poison(stack: LocalStack, count: int, spread_s: float, stop: threading.Event) -> list[str]:
    """Poison bodies straight into the queue, spread over time, retried through an SQS outage."""
    sent: list[str] = []
    for index in range(count):
        body = f"{POISON_BODIES[index % len(POISON_BODIES)]} #{uuid.uuid4().hex[:8]}"
        if index % len(POISON_BODIES) in (1, 2, 4):  # keep JSON ones JSON, made unique inside
            body = POISON_BODIES[index % len(POISON_BODIES)].replace("[1, 2, 3]", f'[1, 2, "{uuid.uuid4().hex[:8]}"]')
            body = body.replace("no-model-or-times", f"no-model-{uuid.uuid4().hex[:8]}")
            body = body.replace('"event": {}', f'"event": {{"n": "{uuid.uuid4().hex[:8]}"}}')
        while not stop.is_set():
            try:
                stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=body)
                sent.append(body)
                break
            except Exception:  # the SQS outage: try again shortly
                stop.wait(0.5)
        stop.wait(spread_s / max(1, count))
    return sent


def sqs_outage(stack: LocalStack, seconds: float, report: SoakReport) -> None:
    port = stack.sqs_server.port
    stack.sqs_server.stop()
    started = time.monotonic()
    time.sleep(seconds)
    stack.sqs_server = SqsServer(port).start()
    report.sqs_outage_s = time.monotonic() - started


def restart_mlflow(stack: LocalStack, report: SoakReport) -> None:
    stack.mlflow.stop(hard=True)
    stack.mlflow.start(timeout=300)
    report.mlflow_restarts_done += 1


def read_expected(paths: list[Path]) -> list[dict]:
    rows = []
    for path in paths:
        rows.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return rows


def verify(stack: LocalStack, expected: list[dict], poison: list[str], report: SoakReport) -> None:
    """Everything from MLflow's own API and the DLQ itself."""
    from mlflow import MlflowClient

    from litellm_mlflow.mlflow_queries import search_traces

    by_id = {row["call_id"]: row for row in expected}  # the span's litellm.call_id is LiteLLM's call id
    traces = search_traces(stack.mlflow.url, EXPERIMENT, include_spans=True)
    report.traces_found = len(traces)
    counts = Counter(call_id_of(trace) for trace in traces)
    report.missing = sum(1 for event_id in by_id if counts[event_id] == 0)
    report.duplicated = sum(1 for event_id in by_id if counts[event_id] > 1)
    report.unexpected = sum(1 for event_id in counts if event_id not in by_id)
    for trace in traces:
        row = by_id.get(call_id_of(trace))
        if row is not None and not figures_match(trace, row):
            report.wrong_figures += 1

    # The usage rollup over the same traces, every hour closed now: each model group's total must be its calls.
    from litellm_mlflow.rollup.rollup import Rollup

    client = MlflowClient(stack.mlflow.url)
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    Rollup(client, experiment_id, grace_s=0).run(now_s=time.time() + 7200)
    summaries = client.search_runs([experiment_id], filter_string="tags.`litellm_mlflow.summary` = 'model_group'")
    totals = {run.info.run_name: run.data.metrics.get("total/requests", 0) for run in summaries}
    groups = Counter(
        trace.info.tags.get("mlflow.traceName")  # the model group
        for trace in traces
        if call_id_of(trace) in by_id
    )
    for group, count in groups.items():
        rolled = int(totals.get(f"model group: {group}", 0))
        report.metric_points += rolled
        report.metric_mismatches += abs(rolled - count)

    dlq = stack.dlq_messages()
    report.dlq_messages = len(dlq)
    report.dlq_not_poison = sum(1 for message in dlq if message["Body"] not in set(poison))
    report.dlq_poison_distinct = len({message["Body"] for message in dlq} & set(poison))
    for name, value, what in (
        ("missing", report.missing, "good events not in MLflow"),
        ("duplicated", report.duplicated, "events with more than one trace"),
        ("unexpected", report.unexpected, "traces that match no event"),
        ("wrong_figures", report.wrong_figures, "traces whose tokens/cost/status differ from the call"),
        ("metric_mismatches", report.metric_mismatches, "usage-summary calls off from the stored good events"),
        ("dlq_not_poison", report.dlq_not_poison, "good messages in the DLQ"),
        ("callback_dropped", report.callback_dropped, "events the callback dropped"),
    ):
        if value:
            report.problems.append(f"{name}: {value} {what}")
    # At least once, like SQS itself: the consumer dead-letters a poison record before acknowledging it, so an
    # invocation killed in between dead-letters it again on the next receive. Every poison message must be there.
    if report.dlq_poison_distinct != len(poison):
        report.problems.append(
            f"DLQ holds {report.dlq_poison_distinct} of the {len(poison)} poison messages sent"
            f" ({report.dlq_messages} messages in all)"
        )


def call_id_of(trace: Any) -> str | None:
    return trace.data.spans[0].attributes.get("litellm.call_id") if trace.data.spans else None


def figures_match(trace: Any, row: dict) -> bool:
    if trace.data.spans[0].attributes.get("litellm.deployment") != row["model"]:
        return False
    if row["status"] != "success":
        return trace.info.state.value == "ERROR"
    if trace.info.state.value != "OK":
        return False
    usage = trace.info.token_usage or {}
    if (usage.get("input_tokens"), usage.get("output_tokens"), usage.get("total_tokens")) != (
        row["prompt_tokens"],
        row["completion_tokens"],
        row["total_tokens"],
    ):
        return False
    cost = json.loads(trace.info.trace_metadata.get("mlflow.trace.cost") or "{}").get("total_cost")
    return math.isclose(cost or 0.0, row["cost"] or 0.0, rel_tol=1e-9, abs_tol=1e-12)


def run_soak(config: SoakConfig, out: Callable[[str], None] = print) -> SoakReport:
    quiet_consumer_logs()
    report = SoakReport(config={k: str(v) for k, v in asdict(config).items()})
    workdir = Path(config.workdir or tempfile.mkdtemp(prefix="soak-"))
    killer: dict = {}

    def wrap(handler: Handler) -> Handler:
        if not config.kill_one_invocation:
            return handler
        wrapped, state = kill_one_invocation(handler)
        killer.update(state=state)
        return wrapped

    options = LocalStackOptions(
        workdir=workdir / "stack",
        experiment=EXPERIMENT,
        start_proxy=False,
        visibility_timeout_s=config.visibility_timeout_s,
        max_receive_count=config.max_receive_count,
        batch_size=config.batch_size,
        batching_window_s=1.0,
        max_backoff_s=config.max_backoff_s,
        handler_wrapper=wrap,
    )
    started = time.monotonic()
    with LocalStack(options, progress=lambda message: out(f"  - {message}")) as stack:
        out(f"soak: {config.events} events from {config.workers} processes x {config.threads} threads")
        stop = threading.Event()
        poison_count = round(config.events * config.poison_share)
        poison: list[str] = []
        poison_thread = threading.Thread(
            target=lambda: poison.extend(send_poison(stack, poison_count, 20.0, stop)), daemon=True
        )
        workers = start_workers(config, stack, workdir)
        poison_thread.start()
        calls_started = time.monotonic()
        faults = threading.Thread(target=inject_faults, args=(config, stack, report, out), daemon=True)
        faults.start()
        for proc, _ in workers:
            proc.wait(timeout=config.timeout_s)
        report.calls_seconds = time.monotonic() - calls_started
        poison_thread.join(timeout=120)
        faults.join(timeout=config.timeout_s)
        failed_workers = [index for index, (proc, _) in enumerate(workers) if proc.returncode != 0]
        if failed_workers:
            report.problems.append(f"caller process(es) {failed_workers} failed: see {workdir}/worker-*.log")
        expected = read_expected([path for _, path in workers if path.exists()])
        report.expected_events = len({row["call_id"] for row in expected})
        report.duplicates_published = sum(1 for row in expected if row["duplicated"])
        report.poison_sent = len(poison)
        report.callback_dropped = sum(worker_dropped(workdir, index) for index in range(len(workers)))
        out(f"callers done in {report.calls_seconds:.0f}s; waiting for the pipeline to drain ...")
        drain_started = time.monotonic()
        wait_drained(stack, report.expected_events, len(poison), config.timeout_s, out)
        report.drain_seconds = time.monotonic() - drain_started
        verify(stack, expected, poison, report)
        report.consumer_invocations = stack.consumer.totals.invocations
        report.consumer_crashes = stack.consumer.totals.crashes
        if config.kill_one_invocation and not killer.get("state", {}).get("killed"):
            report.problems.append("the consumer invocation to kill mid-batch never came (batches too small?)")
    report.total_seconds = time.monotonic() - started
    return report


def worker_dropped(workdir: Path, index: int) -> int:
    """Events a caller's callback dropped (buffer overflow or permanent failure), from its last stdout line."""
    log = workdir / f"worker-{index}.log"
    for line in reversed(log.read_text(errors="replace").splitlines() if log.exists() else []):
        if line.startswith("{") and '"stats"' in line:
            stats = json.loads(line)["stats"]
            return int(stats.get("dropped_overflow", 0)) + int(stats.get("failed_permanently", 0))
    return 0


def inject_faults(config: SoakConfig, stack: LocalStack, report: SoakReport, out: Callable[[str], None]) -> None:
    """The fault schedule, once traffic flows: an MLflow restart, the SQS outage while callers still send, a second
    MLflow restart."""
    wait_for_traffic(stack, max(1, config.events // 20))
    if config.mlflow_restarts >= 1:
        out("fault: MLflow server killed (restarting)")
        restart_mlflow(stack, report)
        out("fault: MLflow server back")
    if config.sqs_outage_s > 0:
        out(f"fault: SQS endpoint down for {config.sqs_outage_s:.0f}s")
        sqs_outage(stack, config.sqs_outage_s, report)
        out("fault: SQS endpoint back")
    for _ in range(max(0, config.mlflow_restarts - 1)):
        time.sleep(5)
        out("fault: MLflow server killed again (restarting)")
        restart_mlflow(stack, report)
        out("fault: MLflow server back")


def wait_for_traffic(stack: LocalStack, messages: int, timeout_s: float = 180) -> None:
    """Until the callers have put `messages` into the queue (so faults hit a pipeline in motion)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sent = stack.sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["All"])["Attributes"]
        in_flight = int(sent["ApproximateNumberOfMessages"]) + int(sent["ApproximateNumberOfMessagesNotVisible"])
        if in_flight + stack.consumer.totals.succeeded >= messages:
            return
        time.sleep(0.2)


def wait_drained(stack: LocalStack, expected: int, poison: int, timeout_s: float, out: Callable[[str], None]) -> None:
    """Until MLflow holds every good event, the queue is empty, and the poison reached the DLQ (or the deadline)."""
    from litellm_mlflow.mlflow_queries import count_traces

    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            landed = count_traces(stack.mlflow.url, EXPERIMENT)
            queued, in_dlq = stack.queue_depth(), stack.queue_depth(stack.dlq_url)
        except Exception as exc:  # a fault may still be in progress
            out(f"  (waiting: {type(exc).__name__})")
            time.sleep(2)
            continue
        state = (landed, queued, in_dlq)
        if state != last:
            out(f"  landed {landed}/{expected}, in the queue {queued}, in the DLQ {in_dlq}/{poison}")
            last = state
        if landed >= expected and queued == 0 and in_dlq >= poison:
            return
        time.sleep(1)


def print_report(report: SoakReport, out: Callable[[str], None] = print) -> None:
    rows = [
        ("good events (unique)", report.expected_events),
        ("published twice (duplicates)", report.duplicates_published),
        ("poison messages sent", report.poison_sent),
        ("traces in MLflow", report.traces_found),
        ("missing", report.missing),
        ("duplicated", report.duplicated),
        ("unexpected traces", report.unexpected),
        ("traces with wrong tokens/cost/status", report.wrong_figures),
        ("calls in the usage summaries (total/requests)", report.metric_points),
        ("metric points off", report.metric_mismatches),
        ("messages in the DLQ", report.dlq_messages),
        ("good messages in the DLQ", report.dlq_not_poison),
        ("events dropped by the callback", report.callback_dropped),
        ("MLflow restarts", report.mlflow_restarts_done),
        ("SQS outage (s)", round(report.sqs_outage_s, 1)),
        ("consumer invocations (killed mid-batch)", f"{report.consumer_invocations} ({report.consumer_crashes})"),
        ("callers' time (s)", round(report.calls_seconds, 1)),
        ("drain after the last call (s)", round(report.drain_seconds, 1)),
    ]
    width = max(len(name) for name, _ in rows)
    out("")
    for name, value in rows:
        out(f"{name.ljust(width)}  {value}")
    out("RESULT: " + ("OK, nothing lost, nothing doubled" if report.ok else "FAILED: " + "; ".join(report.problems)))


def write_figures(report: SoakReport, command: str) -> None:
    from bench.common import write_result

    rows = [
        {"metric": "good events", "ours": report.expected_events, "unit": "events"},
        {"metric": "lost (missing in MLflow)", "ours": report.missing, "unit": "events", "target": 0},
        {"metric": "doubled (more than one trace)", "ours": report.duplicated, "unit": "events", "target": 0},
        {"metric": "traces with wrong tokens/cost", "ours": report.wrong_figures, "unit": "traces", "target": 0},
        {"metric": "metric points off", "ours": report.metric_mismatches, "unit": "points", "target": 0},
        {"metric": "poison messages in the DLQ", "ours": report.dlq_messages, "baseline": report.poison_sent,
         "unit": "messages", "note": "baseline = poison sent"},
        {"metric": "good messages in the DLQ", "ours": report.dlq_not_poison, "unit": "messages", "target": 0},
        {"metric": "duplicate deliveries absorbed", "ours": report.duplicates_published, "unit": "events"},
        {"metric": "drain time after the last call", "ours": round(report.drain_seconds, 1), "unit": "s"},
    ]  # fmt: skip
    notes = [
        f"faults: {report.mlflow_restarts_done} MLflow kill+restart, SQS endpoint down {report.sqs_outage_s:.0f}s, "
        f"{report.duplicates_published} duplicate deliveries, {report.poison_sent} poison messages, "
        f"{report.consumer_crashes} consumer invocation killed mid-batch",
        "result: " + ("nothing lost, nothing doubled" if report.ok else "; ".join(report.problems)),
    ]
    write_result("soak", "Soak under faults", command, rows, runs=1, extra={"notes": notes})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = SoakConfig()
    parser.add_argument("--events", type=int, default=defaults.events)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--mlflow-restarts", type=int, default=defaults.mlflow_restarts)
    parser.add_argument("--sqs-outage", type=float, default=defaults.sqs_outage_s, help="seconds (0: none)")
    parser.add_argument("--no-kill", action="store_true", help="do not kill a consumer invocation mid-batch")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/soak.json")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    config = SoakConfig(
        events=args.events,
        workers=args.workers,
        threads=args.threads,
        mlflow_restarts=args.mlflow_restarts,
        sqs_outage_s=args.sqs_outage,
        kill_one_invocation=not args.no_kill,
        workdir=args.workdir,
    )
    exit_cleanly_on_sigterm()
    report = run_soak(config)
    print_report(report)
    if not args.no_write:
        write_figures(report, ("make soak  (python -m bench.soak " + " ".join(argv or sys.argv[1:])).rstrip() + ")")
        from bench import report as benchmarks_report

        benchmarks_report.main()
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
