"""`litellm-mlflow demo`: the whole pipeline on this machine, driven by a realistic mix of requests.

Starts the local stack, sends the mix through the real LiteLLM proxy, waits (with a deadline) until every call is in
MLflow, prints a summary and the MLflow UI link, and stops everything it started (also on Ctrl-C).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from litellm_mlflow.local.demo_traffic import TrafficReport, plan_requests, send_all
from litellm_mlflow.local.servers import exit_cleanly_on_sigterm
from litellm_mlflow.local.stack import LocalStack, LocalStackOptions
from litellm_mlflow.local.usage_summary import UsageTotals
from litellm_mlflow.mlflow_queries import count_traces

Out = Callable[[str], None]


@dataclass
class DemoSummary:
    sent: int
    succeeded: int
    failed_calls: int
    landed: int
    in_queue: int
    in_dlq: int
    seconds_to_land: float | None

    @property
    def complete(self) -> bool:
        return self.landed == self.sent and self.in_dlq == 0

    def lines(self) -> list[str]:
        took = f"{self.seconds_to_land:.1f}s after the last request" if self.seconds_to_land is not None else "not all"
        return [
            f"  requests sent through the proxy : {self.sent} ({self.succeeded} succeeded, {self.failed_calls} failed)",
            f"  traces landed in MLflow         : {self.landed} ({took})",
            f"  still in the queue              : {self.in_queue}",
            f"  in the dead-letter queue        : {self.in_dlq}",
        ]


def wait_until_landed(stack: LocalStack, expected: int, timeout_s: float, out: Out) -> tuple[int, float | None]:
    """Poll MLflow until `expected` traces are there and the queue is drained; (landed, seconds) at the end."""
    started = time.monotonic()
    landed = 0
    last_shown = -1
    while time.monotonic() - started < timeout_s:
        landed = count_traces(stack.mlflow.url, stack.options.experiment)
        in_queue = stack.queue_depth()
        if landed != last_shown:
            out(f"  landed in MLflow: {landed}/{expected}  (in the queue: {in_queue})")
            last_shown = landed
        if landed >= expected and in_queue == 0:
            return landed, time.monotonic() - started
        time.sleep(0.5)
    return landed, None


def quiet_consumer_logs() -> None:
    """The consumer's per-batch JSON lines and EMF metrics are for CloudWatch; in the demo they would bury the
    progress lines (set POWERTOOLS_LOG_LEVEL=INFO to see them)."""
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    # sagemaker-mlflow's header plugin warns on every request to a plain http:// MLflow; it has nothing to add there.
    logging.getLogger("mlflow.tracking.request_header.registry").setLevel(logging.ERROR)


def ui_link(stack: LocalStack) -> str:
    """The experiment's page in the MLflow UI (it opens on the Overview), or the UI's home."""
    from litellm_mlflow.mlflow_queries import experiment_id
    from litellm_mlflow.mlflow_target import parse_tracking_uri
    from litellm_mlflow.presign.service import presign_url

    base = presign_url(parse_tracking_uri(stack.mlflow.url), sagemaker=None).url
    exp_id = experiment_id(stack.mlflow.url, stack.options.experiment)
    return f"{base.rstrip('/')}/#/experiments/{exp_id}" if exp_id else base


# (view, path under the experiment's page, what it shows) for MLflow 3.10+'s UI; the experiment opens on the Overview.
WHERE_TO_LOOK = (
    ("Overview", "", "requests, latency, errors, tokens (cache read/write too) and cost by model group; "
     "a model LiteLLM could not price is left out, not shown as $0"),
    ("Sessions", "/traces?groupBy=session", "each session a client sent (the demo's coding-agent tasks), in order"),
    ("Traces", "/traces", "one row per call; Display > Columns: Trace name (model group), User, Cost, team_alias, "
     "key_alias, end_user; search e.g. tag.team_alias = 'Search'"),
    ("Runs", "/runs", "Training runs: one usage-summary run per model group and per team (total/* columns = totals "
     "so far); a run's Model metrics tab, search hour/ for hourly charts"),
)  # fmt: skip


def where_to_look(experiment_url: str) -> list[str]:
    """The lines the demo prints after its summary: where each question is answered in the MLflow UI."""
    lines = ["Where to look in MLflow:"]
    for view, path, what in WHERE_TO_LOOK:
        lines += [f"  {view:<9}{experiment_url}{path}", f"           {what}"]
    return lines


def run_demo(
    requests: int = 60,
    keep_running: bool = False,
    workdir: Path = Path(".local-stack"),
    mlflow_port: int | None = None,
    sqs_port: int | None = None,
    proxy_port: int | None = None,
    timeout_s: float = 180.0,
    out: Out = print,
) -> int:
    """Run the demo; 0 when every request landed in MLflow exactly as sent, 1 otherwise."""
    options = LocalStackOptions(workdir=workdir, mlflow_port=mlflow_port, sqs_port=sqs_port, proxy_port=proxy_port)
    quiet_consumer_logs()
    exit_cleanly_on_sigterm()
    out("Starting the local stack (everything on 127.0.0.1):")
    stack = LocalStack(options, progress=lambda message: out(f"  - {message}"))
    usage = UsageTotals().subscribe()
    try:
        stack.start()
        out(f"Sending {requests} requests through the LiteLLM proxy at {stack.proxy_url} ...")
        report = _send_with_progress(stack, requests, out)
        out("Waiting for the consumer to write them into MLflow ...")
        landed, took = wait_until_landed(stack, len(report.sent), timeout_s, out)
        summary = DemoSummary(
            sent=len(report.sent),
            succeeded=report.succeeded,
            failed_calls=report.failed,
            landed=landed,
            in_queue=stack.queue_depth(),
            in_dlq=stack.queue_depth(stack.dlq_url),
            seconds_to_land=took,
        )
        out("\nSummary")
        for line in [*summary.lines(), *usage.lines()]:
            out(line)
        if stack.rollup is not None:
            rolled = stack.rollup.run_now(close_open_hour=True)
            out(f"Usage summaries: {rolled.traces_read} calls rolled up into one run per model group and per team")
        out("")
        for line in where_to_look(ui_link(stack)):
            out(line)
        if report.unexpected:
            out(f"warning: {len(report.unexpected)} request(s) did not behave as planned: {report.unexpected[0].error}")
        if keep_running:
            out(f"\nThe stack keeps running (state in {stack.workdir / 'stack.json'}). Press Ctrl-C to stop it.")
            threading.Event().wait()
        return 0 if summary.complete else 1
    except KeyboardInterrupt:
        out("\nStopping ...")
        return 130
    finally:
        stack.stop()
        usage.unsubscribe()
        out("Stopped every process the demo started.")


def _send_with_progress(stack: LocalStack, count: int, out: Out) -> TrafficReport:
    plans = plan_requests(count)
    done = [0]
    lock = threading.Lock()

    def on_sent(_: object) -> None:
        with lock:
            done[0] += 1
            if done[0] % 10 == 0 or done[0] == count:
                out(f"  sent {done[0]}/{count}")

    return send_all(stack.proxy_url, plans, on_sent=on_sent)


if __name__ == "__main__":
    sys.exit(run_demo())
