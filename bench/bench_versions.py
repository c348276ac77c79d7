"""The consumer's sink on every MLflow version SageMaker runs, behind a 30 ms network: today's path vs the new one.

For each server version (3.0.1, 3.4.0, 3.10.1 and the pinned one, each a real `mlflow server` from its cached venv,
sqlite, 127.0.0.1) a latency-injecting HTTP proxy on 127.0.0.1 adds `--latency-ms` (30: the SageMaker endpoint
seen from a Lambda in the same region) to every request and counts them. Each path runs in its own process against
the proxy: `ours` is this tree's `litellm_mlflow`, `baseline` the tree of `--baseline-ref` (the sink before
issue 11), extracted from git. Per path and version: a warm-up batch (experiment, server version, model runs), then
a batch of `--events` new events timed, then the same batch again (a redelivery) with its failures counted.
Events are clones of a real LiteLLM payload (three models). Before 3.13 the baseline writes one trace at a time,
so its batch is `--baseline-events` long and its time for 1,000 events is extrapolated from its rate (said so in
the table); on 3.13+ both paths get the same batch, and a last row compares ours with the server's own ceiling (the
same OTLP bodies posted back to back by a bare HTTP client). `--postgres URI` puts each server's store in its own
database on a PostgreSQL server instead of sqlite (SageMaker keeps MLflow's data in PostgreSQL); `--workers N`
starts each server with N workers (a SageMaker tracking server is not a laptop shared with the consumer); `--merge`
keeps the figures of versions not run this time. `--runs N` repeats ours / today / ceiling N times against the same
server, in that order each time, and reports medians (the ratios are medians of the per-run ratios); the machine's
load average before and after is recorded, since other work on a shared machine moves these figures a lot.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from packaging.version import Version

os.environ.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "MLFLOW_MODEL_CATALOG_URI": "", "NO_PROXY": "127.0.0.1"})
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")

COMMAND = "python -m bench.bench_versions"
REPO_ROOT = Path(__file__).resolve().parents[1]
BASELINE_REF = "9e9fca4"  # main before issue 11's write-path changes
MODELS = ("gpt-4o-mini", "claude-3-5-haiku", "bedrock/amazon.nova-lite")
# The editable install's import hook would win over PYTHONPATH: drop it so the tree under test is what imports.
WORKER_PRELUDE = (
    "import sys; sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith('__editable__')]; "
)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class LatencyProxy:
    """HTTP/1.1 reverse proxy on 127.0.0.1: sleeps `latency_s` per request, forwards it, counts it."""

    def __init__(self, upstream_port: int, latency_s: float) -> None:
        self.upstream_port, self.latency_s = upstream_port, latency_s
        self.requests = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy._lock:
                    proxy.requests += 1
                time.sleep(proxy.latency_s)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                status, reason, reply_headers, data = proxy._upstream(self.command, self.path, body, headers)
                self.send_response(status, reason)
                for key, value in reply_headers:
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _upstream(self, method: str, path: str, body: bytes | None, headers: dict[str, str]):
        for attempt in range(2):
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = self._local.connection = http.client.HTTPConnection("127.0.0.1", self.upstream_port, 120)
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.reason, response.getheaders(), response.read()
            except (http.client.HTTPException, OSError):
                connection.close()
                self._local.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def take(self) -> int:
        with self._lock:
            count, self.requests = self.requests, 0
        return count

    def close(self) -> None:
        self.server.shutdown()


def baseline_tree(ref: str, into: Path) -> Path:
    """The `litellm_mlflow` package as it was at `ref`, importable from the returned directory."""
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", ref, "litellm_mlflow"], capture_output=True, check=True
    ).stdout
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def payloads(template: dict, count: int, start: float) -> list[dict]:
    out = []
    for i in range(count):
        payload = copy.deepcopy(template)
        event_id = f"bench-{uuid.uuid4().hex}"
        begin = start + i * 0.003
        payload.update(
            id=event_id,
            litellm_call_id=event_id,
            model=MODELS[i % len(MODELS)],
            startTime=begin,
            endTime=begin + 0.4 + (i % 7) * 0.05,
            completionStartTime=begin + 0.4,
            status="failure" if i % 20 == 0 else "success",
        )
        out.append(payload)
    return out


# ---------------------------------------------------------------------------------------------- worker (subprocess)


def worker(spec_path: str) -> None:
    """Runs in a process whose `litellm_mlflow` is the path under test; prints one JSON line."""
    import logging

    logging.disable(logging.WARNING)
    spec = json.loads(Path(spec_path).read_text())
    from litellm_mlflow.events import event_from_payload
    from litellm_mlflow.sink.writer import MlflowSink, SinkSettings

    extra = {"max_in_flight": spec["in_flight"]} if spec.get("in_flight") else {}
    sink = MlflowSink(SinkSettings(tracking_uri=spec["url"], experiment_name=spec["experiment"], **extra))
    warm = [event_from_payload(p) for p in spec["warmup"]]
    batch = [event_from_payload(p) for p in spec["batch"]]
    result = sink.write(warm)
    import litellm_mlflow

    print(json.dumps({"phase": "warm", "failed": len(result.failed), "tree": litellm_mlflow.__file__}), flush=True)
    input()  # the parent resets its request count
    started, cpu = time.perf_counter(), time.process_time()
    result = sink.write(batch)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(json.dumps({"phase": "batch", "seconds": elapsed, "cpu_s": cpu, "failed": len(result.failed)}), flush=True)
    input()
    again = sink.write(batch)
    print(json.dumps({"phase": "redelivery", "failed": len(again.failed)}), flush=True)


def process_tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants (the server's workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total, pending, seen = 0.0, [pid], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def commit_latency_ms(directory: Path, commits: int = 40) -> float:
    """Median time of one small sqlite commit in `directory` (the disk's sync latency, which a 1-worker sqlite server
    pays twice per trace on 3.0.1 and which other work on a shared machine moves a lot)."""
    import sqlite3

    path = directory / f"commit-probe-{uuid.uuid4().hex[:6]}.db"
    connection = sqlite3.connect(path)
    try:
        connection.execute("CREATE TABLE t (a INTEGER)")
        connection.commit()
        times = []
        for i in range(commits):
            started = time.perf_counter()
            connection.execute("INSERT INTO t VALUES (?)", (i,))
            connection.commit()
            times.append((time.perf_counter() - started) * 1000)
    finally:
        connection.close()
        path.unlink(missing_ok=True)
    return statistics.median(times)


def run_path(
    name: str,
    pythonpath: Path,
    url: str,
    proxy: LatencyProxy,
    template: dict,
    events: int,
    server_pid: int | None = None,
    in_flight: int | None = None,
) -> dict:
    spec = {
        "url": url,
        "experiment": f"bench-{name}-{uuid.uuid4().hex[:8]}",
        "warmup": payloads(template, 6, time.time() - 3600),
        "batch": payloads(template, events, time.time() - 600),
        "in_flight": in_flight,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(spec, handle)
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    proc = subprocess.Popen(
        [sys.executable, "-c", f"{WORKER_PRELUDE}import bench.bench_versions as b; b.worker({handle.name!r})"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=str(pythonpath),
    )  # fmt: skip
    try:
        lines = {}
        for phase in ("warm", "batch", "redelivery"):
            line = json.loads(proc.stdout.readline())
            lines[phase] = line
            if phase == "warm":
                server_cpu = process_tree_cpu_s(server_pid) if server_pid else 0.0
                proc.stdin.write("\n")
                proc.stdin.flush()
                proxy.take()
            elif phase == "batch":
                lines["requests"] = proxy.take()
                server_cpu = (process_tree_cpu_s(server_pid) - server_cpu) if server_pid else None
                proc.stdin.write("\n")
                proc.stdin.flush()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.unlink(handle.name)
    seconds = lines["batch"]["seconds"]
    assert lines["warm"]["tree"].startswith(str(pythonpath)), lines["warm"]["tree"]
    figures = {
        "events_per_s": events / seconds,
        "requests_per_event": lines["requests"] / events,
        "seconds_per_1000": seconds * 1000 / events,
        "consumer_cpu_ms_per_event": lines["batch"]["cpu_s"] * 1000 / events,  # the sink's own work, all threads
        "failed": lines["batch"]["failed"],
        "redelivery_failed": lines["redelivery"]["failed"],
        "events": events,
    }
    if server_cpu is not None:
        figures["server_cpu_ms_per_event"] = server_cpu * 1000 / events  # the server's process tree, this batch only
    return figures


def create_database(server_uri: str, version: str, python: Path) -> str:
    """A fresh database for one server version on the given PostgreSQL server (created with that server's own
    interpreter, which has the driver); its URI."""
    name = f"mlflow_{version.replace('.', '_')}_{uuid.uuid4().hex[:6]}"
    code = (
        "import sqlalchemy, sys; e = sqlalchemy.create_engine(sys.argv[1], isolation_level='AUTOCOMMIT'); "
        "c = e.connect(); c.execute(sqlalchemy.text(f'CREATE DATABASE \"{sys.argv[2]}\"')); c.close()"
    )
    subprocess.run([str(python), "-c", code, server_uri, name], check=True)
    return server_uri.rsplit("/", 1)[0] + f"/{name}"


def otlp_ceiling(url: str, template: dict, events: int) -> float:
    """Events/s when the same OTLP bodies our writer would send are posted with no consumer work (servers 3.13+):
    bodies built beforehand, one request after another, to a fresh experiment."""
    import requests
    from mlflow import MlflowClient
    from mlflow.tracing.utils.otlp import MLFLOW_EXPERIMENT_ID_HEADER, OTLP_TRACES_PATH
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from litellm_mlflow.events import event_from_payload
    from litellm_mlflow.sink.otlp_writer import GZIP_MIN_BYTES, to_otel_proto
    from litellm_mlflow.sink.trace_builder import build_trace
    from litellm_mlflow.sink.writer import SinkSettings

    experiment_id = MlflowClient(url).create_experiment(f"bench-ceiling-{uuid.uuid4().hex[:8]}")
    batch = payloads(template, events, time.time() - 600)  # the sink's batch's time base
    protos = [to_otel_proto(build_trace(event_from_payload(p), experiment_id)) for p in batch]
    per_request = SinkSettings(tracking_uri=url).max_traces_per_request
    bodies = []
    for start in range(0, len(protos), per_request):
        request = ExportTraceServiceRequest()
        request.resource_spans.add().scope_spans.add().spans.extend(protos[start : start + per_request])
        bodies.append(request.SerializeToString())
    headers = {"Content-Type": "application/x-protobuf", MLFLOW_EXPERIMENT_ID_HEADER: experiment_id}
    warm = ExportTraceServiceRequest()  # untimed, like the sink's warm-up batch: the server's first trace request
    warm.resource_spans.add().scope_spans.add().spans.extend(
        to_otel_proto(build_trace(event_from_payload(p), experiment_id))
        for p in payloads(template, 6, time.time() - 3600)
    )
    session = requests.Session()
    session.post(url + OTLP_TRACES_PATH, data=warm.SerializeToString(), headers=headers, timeout=300).raise_for_status()
    started = time.perf_counter()
    for body in bodies:
        sent = dict(headers)
        if len(body) >= GZIP_MIN_BYTES:
            import gzip

            body, sent["Content-Encoding"] = gzip.compress(body, 1), "gzip"
        session.post(url + OTLP_TRACES_PATH, data=body, headers=sent, timeout=300).raise_for_status()
    return events / (time.perf_counter() - started)


def version_rows(version: str, measured: dict) -> list[dict]:
    ours, base = measured["ours"], measured["baseline"]
    scaled = "" if base["events"] >= 1000 else f"; baseline batch {base['events']}, scaled"
    runs = measured.get("runs", 1)
    speedups = measured.get("speedups", [])
    per_run = f"; per-run ratios {', '.join(f'{r:.2f}' for r in speedups)}" if runs > 1 else ""
    server = f"; server workers {measured['workers']}" if measured.get("workers", 1) != 1 else ""
    if measured.get("argv"):
        server += f"; `{' '.join(measured['argv'])}`"
    rows = [
        {"metric": f"MLflow {version}: events/s per consumer", "ours": round(ours["events_per_s"], 1),
         "baseline": round(base["events_per_s"], 1), "unit": "events/s",
         "note": f"median of {runs} run(s){per_run}{server}"},
        {"metric": f"MLflow {version}: HTTP requests per event", "ours": round(ours["requests_per_event"], 2),
         "baseline": round(base["requests_per_event"], 2), "unit": "requests"},
        {"metric": f"MLflow {version}: time for 1,000 events", "ours": round(ours["seconds_per_1000"], 1),
         "baseline": round(base["seconds_per_1000"], 1), "unit": "s", "target": "<= 30 s",
         "note": f"ours batch {ours['events']}{scaled}"},
        *([{"metric": f"MLflow {version}: server CPU per event (its process tree, during the batch)",
            "ours": round(ours["server_cpu_ms_per_event"], 2), "baseline": round(base["server_cpu_ms_per_event"], 2),
            "unit": "ms", "note": server_cpu_note(measured)}]
          if "server_cpu_ms_per_event" in ours and "server_cpu_ms_per_event" in base else []),
        *([{"metric": f"MLflow {version}: sqlite commit on this disk, median (measured after each run)",
            "ours": round(ours["sqlite_commit_ms"], 2), "unit": "ms"}] if "sqlite_commit_ms" in ours else []),
        *([{"metric": f"MLflow {version}: consumer CPU per event (its own work; the rest of the time is waiting)",
            "ours": round(ours["consumer_cpu_ms_per_event"], 2),
            "baseline": round(base["consumer_cpu_ms_per_event"], 2), "unit": "ms"}]
          if "consumer_cpu_ms_per_event" in ours and "consumer_cpu_ms_per_event" in base else []),
        {"metric": f"MLflow {version}: failed records on redelivery", "ours": ours["redelivery_failed"],
         "baseline": base["redelivery_failed"], "unit": "records", "target": "0",
         "note": "the most in any run" if runs > 1 else ""},
    ]  # fmt: skip
    if "ceiling_events_per_s" in ours:
        shares = measured.get("ceiling_shares", [])
        rows.append({
            "metric": f"MLflow {version}: events/s vs the server's ceiling (same OTLP bodies, no consumer)",
            "ours": round(ours["events_per_s"], 1), "baseline": round(ours["ceiling_events_per_s"], 1),
            "unit": "events/s", "target": ">= 0.8x",
            "note": f"per-run ratios {', '.join(f'{r:.2f}' for r in shares)}" if runs > 1 else "",
        })  # fmt: skip
    return rows


def server_cpu_note(measured: dict) -> str:
    if measured.get("backend") == "postgres":
        return "the MLflow server's processes only: PostgreSQL's own CPU is not in it"
    if measured.get("workers", 1) == 1:
        return "one server worker: its CPU plus its sqlite commits' disk waits bound the batch's time"
    return "all server workers"


def medians(runs: list[dict]) -> dict:
    """Per-key median of the runs' figures (failures: the most in any run)."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if key in ("failed", "redelivery_failed"):
            out[key] = max(run[key] for run in runs)
        elif isinstance(value, float):
            out[key] = statistics.median(run[key] for run in runs)
    return out


def measure_version(version: str, args: argparse.Namespace, template: dict, old_tree: Path, workdir: Path) -> dict:
    """`args.runs` rounds of ours / today / ceiling against one server of `version`; medians and per-run ratios."""
    from litellm_mlflow.local.mlflow_versions import server_python
    from litellm_mlflow.local.servers import MlflowServer

    python = server_python(version, postgres=bool(args.postgres))
    store = create_database(args.postgres, version, python) if args.postgres else None
    server = MlflowServer(workdir / version, python=python, backend_store_uri=store, workers=args.workers)
    fast = Version(version) >= Version("3.13")  # the OTLP path: same batch for both, and a ceiling
    ours_runs, base_runs = [], []
    with server:
        proxy = LatencyProxy(server.port, args.latency_ms / 1000)
        try:
            for round_ in range(args.runs):
                pid = server.proc.pid if server.proc else None
                ours = run_path("ours", REPO_ROOT, proxy.url, proxy, template, args.events, pid, args.in_flight)
                base = run_path("baseline", old_tree, proxy.url, proxy, template,
                                args.events if fast else args.baseline_events, pid)  # fmt: skip
                if not args.postgres:
                    ours["sqlite_commit_ms"] = base["sqlite_commit_ms"] = commit_latency_ms(workdir)
                if fast:
                    ours["ceiling_events_per_s"] = otlp_ceiling(proxy.url, template, args.events)
                ours_runs.append(ours)
                base_runs.append(base)
                print(f"{version} run {round_ + 1}: ours {ours}\n  baseline {base}", flush=True)
        finally:
            proxy.close()
    measured = {
        "ours": medians(ours_runs),
        "baseline": medians(base_runs),
        "runs": args.runs,
        "workers": args.workers,
        "backend": "postgres" if args.postgres else "sqlite",
        "speedups": [o["events_per_s"] / b["events_per_s"] for o, b in zip(ours_runs, base_runs, strict=True)],
        "argv": args.argv,
    }
    if fast:
        measured["ceiling_shares"] = [o["events_per_s"] / o["ceiling_events_per_s"] for o in ours_runs]
    return measured


def main(argv: list[str] | None = None) -> int:
    from bench.bench_consumer import template_payload
    from bench.common import RESULTS_DIR, write_result
    from litellm_mlflow.local.mlflow_versions import all_versions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", default=",".join(all_versions()))
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--baseline-events", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=1, help="rounds per version (medians are reported)")
    parser.add_argument("--workers", type=int, default=1, help="`mlflow server --workers` (results get a _w<N> name)")
    parser.add_argument("--baseline-ref", default=BASELINE_REF)
    parser.add_argument("--in-flight", type=int, help="ours only: SinkSettings.max_in_flight (default: the sink's)")
    parser.add_argument("--result", help="results name (default: versions[_postgres][_w<N>])")
    parser.add_argument("--merge", action="store_true", help="keep the other versions' figures of the last run")
    parser.add_argument(
        "--postgres",
        metavar="URI",
        help="a PostgreSQL server (e.g. postgresql+psycopg2://postgres@127.0.0.1:5432/postgres): each version gets "
        "its own database there instead of sqlite; results go to versions_postgres.json",
    )
    args = parser.parse_args(argv)
    args.argv = [arg for arg in (sys.argv[1:] if argv is None else argv) if arg != "--merge"]

    template = template_payload()
    figures: dict[str, dict] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-versions-") as workdir:
        old_tree = baseline_tree(args.baseline_ref, Path(workdir) / "baseline")
        (old_tree / "bench").symlink_to(REPO_ROOT / "bench")
        for version in args.versions.split(","):
            figures[version] = measure_version(version, args, template, old_tree, Path(workdir))
    load_after = os.getloadavg()
    name = args.result or (
        ("versions_postgres" if args.postgres else "versions") + (f"_w{args.workers}" if args.workers != 1 else "")
    )
    if args.merge and (RESULTS_DIR / f"{name}.json").exists():
        figures = {**json.loads((RESULTS_DIR / f"{name}.json").read_text())["figures"], **figures}
    rows = [row for version, measured in figures.items() for row in version_rows(version, measured)]
    backend = "PostgreSQL" if args.postgres else "sqlite"
    workers = f", {args.workers} server workers" if args.workers != 1 else ""
    load = f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    write_result(
        name,
        f"Consumer sink per MLflow server version behind a {args.latency_ms:g} ms proxy ({backend}{workers}), "
        f"median of {args.runs} run(s), {load}; baseline: the sink at {args.baseline_ref}",
        COMMAND,
        rows,
        runs=args.runs,
        extra={"figures": figures, "latency_ms": args.latency_ms, "baseline_ref": args.baseline_ref,
               "argv": args.argv, "load_average": [load_before, load_after]},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
