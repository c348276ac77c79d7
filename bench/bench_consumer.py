"""Consumer throughput: our Lambda handler (OTLP batches + log_batch metrics) vs the straightforward MLflow path.

One local `mlflow server` (sqlite, its background job runner off) in a temp dir. Events are clones of a real
LiteLLM mock-call payload (three models, fresh ids and times). For batches of 100 and 1,000 events:
- ours: the real `functions/consumer/handler.py` on a Lambda SQS event (decode, traces, per-model metrics), warm
  container (the experiment, server version and model runs were resolved by an earlier batch);
- baseline: what LiteLLM's own MLflow callback does, one trace per event via `mlflow.start_span_no_context` +
  `span.end`, async export, then `mlflow.flush_trace_async_logging()` (traces only, no metrics).
HTTP requests are counted in this process by wrapping `requests.Session.send`; the traces that landed are counted on
the server after each run. Also: the handler module's cold import time in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

os.environ.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "MLFLOW_MODEL_CATALOG_URI": "", "NO_PROXY": "127.0.0.1"})
# The local server's background job runner polls the same sqlite file and slows every write 10-20x; a SageMaker
# server has a real database. Off for this server, for both paths alike.
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")

import requests

from bench.common import median, write_result
from litellm_mlflow.events import encode_event
from litellm_mlflow.local.servers import MlflowServer

COMMAND = "python -m bench.bench_consumer"
REPO_ROOT = Path(__file__).resolve().parents[1]
HANDLER = REPO_ROOT / "functions" / "consumer" / "handler.py"
MODELS = ("gpt-4o-mini", "claude-3-5-haiku", "bedrock/amazon.nova-lite")


class RequestCounter:
    """Counts HTTP requests by path for everything that goes through `requests` in this process."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._original = requests.Session.send

    def install(self) -> None:
        counter, original = self, self._original

        def send(session, request, **kwargs):
            path = requests.utils.urlparse(request.url).path
            with counter._lock:
                counter.counts[path] += 1
            return original(session, request, **kwargs)

        requests.Session.send = send

    def take(self) -> Counter[str]:
        with self._lock:
            counts, self.counts = self.counts, Counter()
        return counts


def template_payload() -> dict:
    """One real StandardLoggingPayload from a LiteLLM mock call."""
    import litellm
    from litellm.integrations.custom_logger import CustomLogger

    captured: list[dict] = []

    class Capture(CustomLogger):
        def log_success_event(self, kwargs, response_obj, start_time, end_time):
            captured.append(dict(kwargs["standard_logging_object"]))

    litellm.callbacks = [Capture()]
    litellm.completion(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is MLflow?"}],
        mock_response="MLflow is an open source platform for the machine learning lifecycle.",
        metadata={"tags": ["bench:consumer"]},
    )
    deadline = time.monotonic() + 30
    while not captured and time.monotonic() < deadline:  # LiteLLM may log from a worker thread
        time.sleep(0.02)
    litellm.callbacks = []
    if not captured:
        raise RuntimeError("LiteLLM did not log the template call")
    return captured[0]


def make_payloads(template: dict, count: int) -> list[dict]:
    now = time.time()
    payloads = []
    for i in range(count):
        payload = copy.deepcopy(template)
        event_id = f"bench-{uuid.uuid4().hex}"
        start = now - 60 + i * 0.003
        payload.update(
            id=event_id,
            litellm_call_id=event_id,
            model=MODELS[i % len(MODELS)],
            startTime=start,
            endTime=start + 0.4 + (i % 7) * 0.05,
            completionStartTime=start + 0.4,
            status="failure" if i % 20 == 0 else "success",
        )
        payloads.append(payload)
    return payloads


def sqs_event(payloads: list[dict]) -> dict:
    records = []
    for payload in payloads:
        message = encode_event(payload)
        records.append(
            {
                "messageId": str(uuid.uuid4()),
                "body": message.body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
                "messageAttributes": {
                    name: {"stringValue": attr["StringValue"], "dataType": attr["DataType"]}
                    for name, attr in message.attributes.items()
                },
            }
        )
    return {"Records": records}


class Context:
    function_name = "bench-consumer"
    aws_request_id = "bench"

    def __init__(self, timeout_s: float = 900.0) -> None:
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def load_handler():
    import importlib.util
    import logging

    spec = importlib.util.spec_from_file_location("bench_consumer_handler", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    logging.getLogger().setLevel(logging.ERROR)
    module.logger.setLevel("ERROR")
    return module.handler


def trace_count(client, experiment_id: str) -> int:
    total, token = 0, None
    while True:
        page = client.search_traces(locations=[experiment_id], max_results=500, page_token=token, include_spans=False)
        total += len(page)
        token = page.token
        if not token:
            return total


def run_ours(handler, payloads, counter: RequestCounter) -> dict:
    event = sqs_event(payloads)
    counter.take()
    started = time.perf_counter()
    with open(os.devnull, "w") as devnull:  # EMF metrics go to stdout
        stdout, sys.stdout = sys.stdout, devnull
        try:
            response = handler(event, Context())
        finally:
            sys.stdout = stdout
    elapsed = time.perf_counter() - started
    counts = counter.take()
    failed = len(response["batchItemFailures"])
    return {
        "events_per_s": len(payloads) / elapsed,
        "requests_per_event": sum(counts.values()) / len(payloads),
        "metric_requests_per_event": counts["/api/2.0/mlflow/runs/log-batch"] / len(payloads),
        "failed": failed,
    }


def run_baseline(payloads, experiment_id: str, counter: RequestCounter) -> dict:
    import mlflow
    from mlflow.entities import SpanStatusCode

    counter.take()
    started = time.perf_counter()
    for payload in payloads:
        span = mlflow.start_span_no_context(
            name="litellm-completion",
            span_type="LLM",
            inputs={"messages": payload["messages"]},
            attributes={
                "model": payload["model"],
                "mlflow.chat.tokenUsage": {
                    "input_tokens": payload["prompt_tokens"],
                    "output_tokens": payload["completion_tokens"],
                    "total_tokens": payload["total_tokens"],
                },
                "response_cost": payload["response_cost"],
            },
            tags={"bench": "consumer"},
            experiment_id=experiment_id,
            start_time_ns=int(payload["startTime"] * 1e9),
        )
        ok = payload["status"] == "success"
        span.end(
            outputs=payload["response"],
            status=SpanStatusCode.OK if ok else SpanStatusCode.ERROR,
            end_time_ns=int(payload["endTime"] * 1e9),
        )
    mlflow.flush_trace_async_logging(terminate=False)
    elapsed = time.perf_counter() - started
    counts = counter.take()
    return {"events_per_s": len(payloads) / elapsed, "requests_per_event": sum(counts.values()) / len(payloads)}


def cold_import_seconds(runs: int) -> list[float]:
    code = (
        "import time, importlib.util, sys; t = time.perf_counter(); "
        f"spec = importlib.util.spec_from_file_location('h', {str(HANDLER)!r}); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
        "print(time.perf_counter() - t)"
    )
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per batch size and path (median reported)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--import-runs", type=int, default=3)
    args = parser.parse_args(argv)

    import mlflow
    from mlflow import MlflowClient

    counter = RequestCounter()
    counter.install()
    template = template_payload()
    with tempfile.TemporaryDirectory(prefix="bench-consumer-") as workdir, MlflowServer(Path(workdir)) as server:
        os.environ["MLFLOW_TRACKING_URI"] = server.url
        os.environ["MLFLOW_EXPERIMENT_NAME"] = "bench-ours"
        mlflow.set_tracking_uri(server.url)
        client = MlflowClient(server.url)
        handler = load_handler()
        warm = run_ours(handler, make_payloads(template, 30), counter)  # cold start: experiment, version, runs
        assert warm["failed"] == 0, "warm-up batch failed"
        ours_experiment = client.get_experiment_by_name("bench-ours").experiment_id
        base_experiment = client.create_experiment("bench-baseline")
        run_baseline(make_payloads(template, 10), base_experiment, counter)

        results: dict[int, dict[str, list]] = {}
        for size in args.sizes:
            per = results.setdefault(size, {"ours": [], "base": [], "ours_landed": [], "base_landed": []})
            for _ in range(args.runs):
                before = trace_count(client, ours_experiment)
                per["ours"].append(run_ours(handler, make_payloads(template, size), counter))
                per["ours_landed"].append(trace_count(client, ours_experiment) - before)
                before = trace_count(client, base_experiment)
                per["base"].append(run_baseline(make_payloads(template, size), base_experiment, counter))
                per["base_landed"].append(trace_count(client, base_experiment) - before)
                print(f"  size {size}: ours {per['ours'][-1]['events_per_s']:.0f} ev/s, "
                      f"baseline {per['base'][-1]['events_per_s']:.0f} ev/s", flush=True)  # fmt: skip
    imports = cold_import_seconds(args.import_runs)

    rows = []
    for size, per in results.items():

        def med(path: str, key: str, per=per) -> float:
            return median([run[key] for run in per[path]])

        rows += [
            {"metric": f"events/s, batch of {size:,}", "ours": round(med("ours", "events_per_s"), 1),
             "baseline": round(med("base", "events_per_s"), 1), "unit": "events/s", "target": ">= 5x baseline",
             "note": "ours includes per-model metrics; baseline writes traces only"},
            {"metric": f"HTTP requests per event, batch of {size:,}",
             "ours": round(med("ours", "requests_per_event"), 4),
             "baseline": round(med("base", "requests_per_event"), 3), "unit": "requests/event"},
            {"metric": f"metrics HTTP requests per event, batch of {size:,}",
             "ours": round(med("ours", "metric_requests_per_event"), 4), "unit": "requests/event", "target": "<= 0.1"},
            {"metric": f"traces landed of {size:,} (median)", "ours": median(per["ours_landed"]),
             "baseline": median(per["base_landed"]), "unit": "traces",
             "note": f"records reported failed by ours: {sum(run['failed'] for run in per['ours'])}"},
        ]  # fmt: skip
    rows.append({"metric": "consumer handler cold import", "ours": round(median(imports), 2), "unit": "s",
                 "note": f"fresh interpreter, min {min(imports):.2f} s; mlflow itself is most of it"})  # fmt: skip
    write_result(
        "consumer",
        "Consumer: SQS batch -> MLflow traces + metrics, ours vs one-trace-at-a-time async export",
        COMMAND,
        rows,
        runs=args.runs,
        extra={"per_run": {str(k): v for k, v in results.items()}, "import_s": imports,
               "stdev_events_per_s": {str(k): statistics.pstdev(r["events_per_s"] for r in v["ours"])
                                      for k, v in results.items()}},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
