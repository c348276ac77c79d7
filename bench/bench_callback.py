"""Publishing side, side by side in one run: our callback vs LiteLLM's built-in `aws_sqs` (SQSLogger).

Both publish the same LiteLLM calls (`mock_response`, no network) to their own queue on one moto SQS server running
in a separate process (so the server does not share the benchmark's GIL). For the outage the loggers reach moto
through a small TCP forwarder, also its own process, which is killed and restarted: the endpoint goes away while
moto keeps the queues.

Measured per run, reported as medians:
- time added on the caller's thread: the logging hook call itself, timed around the hook as LiteLLM invokes it;
- SQS HTTP requests per delivered event under load (counted on each logger's HTTP path: a botocore `before-send`
  hook for ours, a wrapper around aws_sqs's httpx `post`);
- events delivered from the sync SDK, after an abrupt exit (a subprocess makes N async calls and returns at once),
  and through an endpoint outage of a few seconds.
aws_sqs runs with `sqs_flush_interval=1` (default 10 s) so that it sends inside the measured windows.

    python -m bench.bench_callback [--runs 3] [--calls 600]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.update(
    {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
)

from bench.common import median, percentile, write_result
from litellm_mlflow.local.servers import LOOPBACK, free_port, kill, port_in_use, spawn, wait_http_ok

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python -m bench.bench_callback"
MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Summarise the release notes in three bullet points."}]
BUILTIN_FLUSH_INTERVAL_S = 1
OUTAGE_S = 3.0
WARMUP_CALLS = 5


# ---------------------------------------------------------------------------------------------- local endpoints


def _tcp_forwarder(listen_port: int, target_port: int) -> None:
    """Run in a child process: forward every connection on listen_port to target_port (both on 127.0.0.1)."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            target_reader, target_writer = await asyncio.open_connection(LOOPBACK, target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, target_writer), pipe(target_reader, client_writer))

    async def serve() -> None:
        server = await asyncio.start_server(handle, LOOPBACK, listen_port, reuse_address=True)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


class Endpoints:
    """moto's SQS in its own process, plus a killable forwarder in front of it for the outage."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.moto_port = free_port()
        self.forward_port = free_port()
        self.moto = None
        self.forwarder = None

    @property
    def moto_url(self) -> str:
        return f"http://{LOOPBACK}:{self.moto_port}"

    @property
    def forward_url(self) -> str:
        return f"http://{LOOPBACK}:{self.forward_port}"

    def start(self) -> Endpoints:
        cmd = [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.moto_port)]
        self.moto = spawn(cmd, self.workdir / "moto.log")
        wait_http_ok(f"{self.moto_url}/moto-api/data.json", 60, self.moto, self.workdir / "moto.log")
        self.start_forwarder()
        return self

    def start_forwarder(self) -> None:
        code = f"from bench.bench_callback import _tcp_forwarder; _tcp_forwarder({self.forward_port}, {self.moto_port})"
        self.forwarder = spawn([sys.executable, "-c", code], self.workdir / "forwarder.log", cwd=REPO_ROOT)
        deadline = time.monotonic() + 30
        while not port_in_use(self.forward_port):
            if time.monotonic() > deadline or self.forwarder.poll() is not None:
                raise RuntimeError(f"TCP forwarder did not start; see {self.workdir / 'forwarder.log'}")
            time.sleep(0.02)

    def stop_forwarder(self) -> None:
        kill(self.forwarder, hard=True)
        self.forwarder = None

    def stop(self) -> None:
        kill(self.forwarder, hard=True)
        kill(self.moto)


class Queues:
    def __init__(self, endpoints: Endpoints) -> None:
        import boto3

        self.client = boto3.client("sqs", endpoint_url=endpoints.moto_url, region_name="us-east-1")

    def create(self, label: str) -> str:
        return self.client.create_queue(QueueName=f"{label}-{uuid.uuid4().hex[:8]}")["QueueUrl"]

    def distinct_calls(self, url: str) -> int:
        """Drain the queue and count distinct LiteLLM calls (a duplicate delivery does not count twice)."""
        from litellm_mlflow import events

        seen: set[str] = set()
        while True:
            batch = self.client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
            ).get("Messages", [])
            if not batch:
                return len(seen)
            for message in batch:  # ours packs several events into a message under load
                for part in events.decode_message(message["Body"], message.get("MessageAttributes")):
                    assert part.event is not None, part.error
                    seen.add(part.event.call_id or part.event.event_id)


def via(url: str, base: str) -> str:
    """The same queue URL, addressed through another endpoint (the forwarder)."""
    return base + "/" + url.split("/", 3)[3]


# ---------------------------------------------------------------------------------------------- instrumentation


class Counter:
    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.value += 1


class Samples:
    """Per hook call: wall-clock ns (what the caller waits, scheduler noise included) and the thread's CPU ns."""

    def __init__(self) -> None:
        self.wall: list[int] = []
        self.cpu: list[int] = []

    def __len__(self) -> int:
        return len(self.wall)

    def add(self, wall_started: int, cpu_started: int) -> None:
        self.cpu.append(time.thread_time_ns() - cpu_started)
        self.wall.append(time.perf_counter_ns() - wall_started)

    def us(self, pct: float, kind: str = "wall") -> float:
        return percentile(getattr(self, kind), pct) / 1000


def time_hooks(logger: Any, samples: Samples) -> None:
    """Replace the logger's hooks by timed wrappers; LiteLLM calls them by keyword, exactly like the originals."""
    for name in ("async_log_success_event", "async_log_failure_event"):
        original = getattr(logger, name)

        async def timed(kwargs, response_obj, start_time, end_time, _original=original):
            cpu_started, wall_started = time.thread_time_ns(), time.perf_counter_ns()
            await _original(kwargs=kwargs, response_obj=response_obj, start_time=start_time, end_time=end_time)
            samples.add(wall_started, cpu_started)

        setattr(logger, name, timed)
    for name in ("log_success_event", "log_failure_event"):
        original = getattr(logger, name)

        def timed_sync(kwargs, response_obj, start_time, end_time, _original=original):
            cpu_started, wall_started = time.thread_time_ns(), time.perf_counter_ns()
            _original(kwargs=kwargs, response_obj=response_obj, start_time=start_time, end_time=end_time)
            samples.add(wall_started, cpu_started)

        setattr(logger, name, timed_sync)


def our_logger(queue_url: str, endpoint: str, requests: Counter):
    from litellm_mlflow.publish.litellm_logger import Settings, SqsEventLogger
    from litellm_mlflow.publish.sqs_client import default_sqs_client

    def counted_client(url: str):
        client = default_sqs_client(url, endpoint_url=endpoint)
        client.meta.events.register("before-send.sqs.SendMessageBatch", lambda **_: requests.add())
        return client

    return SqsEventLogger(Settings.from_env({"LITELLM_MLFLOW_QUEUE_URL": queue_url}), client_factory=counted_client)


def builtin_logger(queue_url: str, requests: Counter):
    """LiteLLM's own aws_sqs logger; must be created inside a running event loop (it starts a flush task)."""
    import litellm
    from litellm.integrations.sqs import SQSLogger

    litellm.aws_sqs_callback_params = {}
    logger = SQSLogger(
        sqs_queue_url=queue_url, sqs_region_name="us-east-1", sqs_flush_interval=BUILTIN_FLUSH_INTERVAL_S
    )
    client = logger.async_httpx_client
    if not getattr(client, "_bench_counted", False):
        original_post = client.post

        async def counted_post(*args, **kwargs):
            BUILTIN_REQUESTS[0].add()
            return await original_post(*args, **kwargs)

        client.post = counted_post
        client._bench_counted = True
    BUILTIN_REQUESTS[0] = requests
    return logger


BUILTIN_REQUESTS: list[Counter] = [Counter()]


def use_callbacks(*loggers: Any) -> None:
    import litellm

    for old in list(litellm.callbacks):
        litellm.logging_callback_manager.remove_callback_from_all_lists(old)
    litellm.callbacks = list(loggers)


def builtin_sends_in_flight() -> int:
    """aws_sqs fires one task per event (`async_send_message`) and never awaits them: count the live ones."""
    return sum(
        1 for task in asyncio.all_tasks() if getattr(task.get_coro(), "__qualname__", "").endswith("async_send_message")
    )


async def drain_builtin(builtin: Any) -> None:
    await builtin.flush_queue()
    await wait_for(lambda: builtin_sends_in_flight() == 0, 120, "aws_sqs sends to finish")


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def warm_up(*loggers: Any) -> None:
    """A few calls outside the measurement: LiteLLM's lazy imports and caches, each logger's one-time start-up."""
    from litellm.integrations.custom_logger import CustomLogger

    class Seen(CustomLogger):
        count = 0

        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            Seen.count += 1

    use_callbacks(*loggers, Seen())
    await call_async(WARMUP_CALLS, tag="warmup")
    await wait_for(lambda: Seen.count >= WARMUP_CALLS, 60, "warm-up events")  # none may leak into a measured logger
    use_callbacks()


async def call_async(count: int, wave: int = 50, tag: str = "") -> None:
    import litellm

    for start in range(0, count, wave):
        await asyncio.gather(
            *(
                litellm.acompletion(model=MODEL, messages=MESSAGES, mock_response=f"{tag} answer {i}")
                for i in range(start, min(count, start + wave))
            )
        )


# ---------------------------------------------------------------------------------------------- scenarios


async def scenario_async_load(endpoints: Endpoints, queues: Queues, calls: int) -> dict[str, float]:
    """Both loggers on the same async calls: hook time and SQS requests per event."""
    ours_q, builtin_q = queues.create("ours-load"), queues.create("builtin-load")
    ours_requests, builtin_requests = Counter(), Counter()
    ours_samples, builtin_samples = Samples(), Samples()

    ours = our_logger(ours_q, endpoints.moto_url, ours_requests)
    builtin = builtin_logger(builtin_q, builtin_requests)
    await warm_up(ours, builtin)
    assert await asyncio.to_thread(ours.flush, 60), ours.stats()
    await drain_builtin(builtin)
    ours_requests.value = builtin_requests.value = 0
    queues.distinct_calls(ours_q), queues.distinct_calls(builtin_q)  # drained: only measured calls count below
    time_hooks(ours, ours_samples)
    time_hooks(builtin, builtin_samples)
    use_callbacks(ours, builtin)
    await call_async(calls, tag="load")
    await wait_for(lambda: len(ours_samples) >= calls and len(builtin_samples) >= calls, 60, "logging hooks")
    use_callbacks()
    assert await asyncio.to_thread(ours.flush, 60), ours.stats()
    await drain_builtin(builtin)
    ours_delivered = queues.distinct_calls(ours_q)  # events, not messages: ours packs several into one
    builtin_delivered = queues.distinct_calls(builtin_q)
    return {
        "async_p50_ours": ours_samples.us(50),
        "async_p99_ours": ours_samples.us(99),
        "async_cpu_p99_ours": ours_samples.us(99, "cpu"),
        "async_p50_builtin": builtin_samples.us(50),
        "async_p99_builtin": builtin_samples.us(99),
        "async_cpu_p99_builtin": builtin_samples.us(99, "cpu"),
        "requests_per_event_ours": ours_requests.value / max(1, ours_delivered),
        "requests_per_event_builtin": builtin_requests.value / max(1, builtin_delivered),
        "load_delivered_ours": 100.0 * ours_delivered / calls,
        "load_delivered_builtin": 100.0 * builtin_delivered / calls,
    }


def scenario_sync(endpoints: Endpoints, queues: Queues, calls: int) -> dict[str, float]:
    """The sync SDK: our hook time there, and whether aws_sqs can publish at all (it needs a running loop)."""
    import litellm

    ours_q, builtin_q = queues.create("ours-sync"), queues.create("builtin-sync")
    samples = Samples()
    ours = our_logger(ours_q, endpoints.moto_url, Counter())
    loggers = [ours]
    with contextlib.suppress(RuntimeError):  # "no running event loop": aws_sqs cannot exist in sync code
        loggers.append(builtin_logger(builtin_q, Counter()))
    use_callbacks(*loggers)
    litellm.completion(model=MODEL, messages=MESSAGES, mock_response="sync warm-up")  # one-time start-up, untimed
    deadline = time.monotonic() + 60
    while ours.stats()["enqueued"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    time_hooks(ours, samples)
    for i in range(calls):
        litellm.completion(model=MODEL, messages=MESSAGES, mock_response=f"sync answer {i}")
    deadline = time.monotonic() + 60
    while len(samples) < calls and time.monotonic() < deadline:
        time.sleep(0.02)
    use_callbacks()
    ours.flush(60)
    return {
        "sync_p50_ours": samples.us(50),
        "sync_p99_ours": samples.us(99),
        "sync_cpu_p99_ours": samples.us(99, "cpu"),
        "sync_delivered_ours": 100.0 * (queues.distinct_calls(ours_q) - 1) / calls,
        "sync_delivered_builtin": 100.0 * queues.distinct_calls(builtin_q) / calls,
    }


EXIT_SCRIPT = """
import atexit, asyncio, contextlib, json, sys

received = {"ours": 0, "builtin": 0}
# Registered first, so it runs last: after LiteLLM's and our exit-time flushes.
atexit.register(lambda: print("RECEIVED " + json.dumps(received), flush=True))

import litellm
from litellm.integrations.sqs import SQSLogger
from litellm_mlflow.callback import sqs_logger

mode, builtin_queue, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def counted(logger, name):
    for hook in ("log_success_event", "async_log_success_event"):
        original = getattr(logger, hook)
        if hook.startswith("async"):
            async def wrapper(kwargs, response_obj, start_time, end_time, _original=original):
                received[name] += 1
                await _original(kwargs=kwargs, response_obj=response_obj, start_time=start_time, end_time=end_time)
        else:
            def wrapper(kwargs, response_obj, start_time, end_time, _original=original):
                received[name] += 1
                _original(kwargs=kwargs, response_obj=response_obj, start_time=start_time, end_time=end_time)
        setattr(logger, hook, wrapper)
    return logger


def loggers():
    found = [counted(sqs_logger, "ours")]
    litellm.aws_sqs_callback_params = {}
    with contextlib.suppress(RuntimeError):  # no running event loop: aws_sqs cannot start in a sync program
        found.append(counted(SQSLogger(sqs_queue_url=builtin_queue, sqs_region_name="us-east-1",
                                       sqs_flush_interval=1), "builtin"))
    return found


if mode == "sync":
    litellm.callbacks = loggers()
    for i in range(count):
        litellm.completion(mock_response=f"exit answer {i}", **request)
else:
    async def main():
        litellm.callbacks = loggers()
        await asyncio.gather(*(litellm.acompletion(mock_response=f"exit answer {i}", **request)
                               for i in range(count)))
    asyncio.run(main())
"""


def scenario_abrupt_exit(endpoints: Endpoints, queues: Queues, calls: int, mode: str) -> dict[str, float]:
    """A process makes N calls with both loggers and returns at once (no flush call); what reached SQS?"""
    import json
    import subprocess

    ours_q, builtin_q = queues.create(f"ours-exit-{mode}"), queues.create(f"builtin-exit-{mode}")
    env = {**os.environ, "LITELLM_MLFLOW_QUEUE_URL": ours_q, "AWS_ENDPOINT_URL_SQS": endpoints.moto_url}
    result = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, mode, builtin_q, str(calls)],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    if result.returncode != 0 or "RECEIVED " not in result.stdout:
        raise RuntimeError(f"exit scenario ({mode}) failed: {result.stderr[-2000:]}")
    received = json.loads(result.stdout.split("RECEIVED ", 1)[1].splitlines()[0])
    ours, builtin = queues.distinct_calls(ours_q), queues.distinct_calls(builtin_q)
    return {
        f"exit_{mode}_delivered_ours": 100.0 * ours / calls,
        f"exit_{mode}_delivered_builtin": 100.0 * builtin / calls,
        f"exit_{mode}_of_received_ours": 100.0 * ours / max(1, received["ours"]),
        f"exit_{mode}_of_received_builtin": 100.0 * builtin / max(1, received["builtin"])
        if received["builtin"]
        else 0.0,
    }


async def scenario_outage(endpoints: Endpoints, queues: Queues, rate_per_s: int, seconds: float) -> dict[str, float]:
    """Steady async traffic; the endpoint disappears for OUTAGE_S in the middle, then comes back."""
    ours_q, builtin_q = queues.create("ours-outage"), queues.create("builtin-outage")
    builtin_requests = Counter()
    made = 0

    ours = our_logger(via(ours_q, endpoints.forward_url), endpoints.forward_url, Counter())
    builtin = builtin_logger(via(builtin_q, endpoints.forward_url), builtin_requests)
    use_callbacks(ours, builtin)
    started = time.monotonic()
    down_at, up_at = started + (seconds - OUTAGE_S) / 2, started + (seconds + OUTAGE_S) / 2
    state = "before"
    while time.monotonic() - started < seconds:
        now = time.monotonic()
        if state == "before" and now >= down_at:
            await asyncio.to_thread(endpoints.stop_forwarder)
            state = "down"
        elif state == "down" and now >= up_at:
            await asyncio.to_thread(endpoints.start_forwarder)
            state = "after"
        wave = max(1, rate_per_s // 10)
        await call_async(wave, wave=wave, tag=f"outage {made}")
        made += wave
        await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - now)))
    if state == "down":
        await asyncio.to_thread(endpoints.start_forwarder)
    await wait_for(lambda: ours.stats()["enqueued"] >= made, 60, "our hooks")
    use_callbacks()
    await asyncio.to_thread(ours.flush, 60)
    await drain_builtin(builtin)

    return {
        "outage_delivered_ours": 100.0 * queues.distinct_calls(ours_q) / made,
        "outage_delivered_builtin": 100.0 * queues.distinct_calls(builtin_q) / made,
    }


# ---------------------------------------------------------------------------------------------- report


def rows_from(runs: list[dict[str, float]], calls: int, exit_calls: int) -> list[dict]:
    def med(key: str) -> float:
        return round(median([run[key] for run in runs]), 3)

    return [
        {"metric": "caller-thread time per call, p50 (async SDK)", "ours": med("async_p50_ours"),
         "baseline": med("async_p50_builtin"), "unit": "us", "note": "logging hook as LiteLLM awaits it"},
        {"metric": "caller-thread time per call, p99 (async SDK)", "ours": med("async_p99_ours"),
         "baseline": med("async_p99_builtin"), "unit": "us", "target": "< 100",
         "note": "aws_sqs signs and posts on the same event loop later; not included in its figure"},
        {"metric": "caller-thread CPU time per call, p99 (async SDK)", "ours": med("async_cpu_p99_ours"),
         "baseline": med("async_cpu_p99_builtin"), "unit": "us", "note": "thread CPU clock: no scheduler noise"},
        {"metric": "caller-thread time per call, p50 (sync SDK)", "ours": med("sync_p50_ours"), "unit": "us",
         "note": "aws_sqs has no sync hook"},
        {"metric": "caller-thread time per call, p99 (sync SDK)", "ours": med("sync_p99_ours"), "unit": "us",
         "target": "< 100", "note": "hook runs on LiteLLM's logging thread pool, beside the caller"},
        {"metric": "caller-thread CPU time per call, p99 (sync SDK)", "ours": med("sync_cpu_p99_ours"), "unit": "us"},
        {"metric": "SQS requests per event under load", "ours": med("requests_per_event_ours"),
         "baseline": med("requests_per_event_builtin"), "unit": "requests/event", "target": "<= 0.15",
         "note": f"{calls} async calls in waves of 50"},
        {"metric": "events delivered under load", "ours": med("load_delivered_ours"),
         "baseline": med("load_delivered_builtin"), "unit": "%", "target": "100"},
        {"metric": "events delivered, sync SDK", "ours": med("sync_delivered_ours"),
         "baseline": med("sync_delivered_builtin"), "unit": "%", "target": "100",
         "note": "aws_sqs cannot start without a running event loop"},
        {"metric": "events delivered after an abrupt exit, sync SDK", "ours": med("exit_sync_delivered_ours"),
         "baseline": med("exit_sync_delivered_builtin"), "unit": "%", "target": "100",
         "note": f"subprocess: {exit_calls} calls, then returns at once"},
        {"metric": "events delivered after an abrupt exit, async SDK", "ours": med("exit_async_delivered_ours"),
         "baseline": med("exit_async_delivered_builtin"), "unit": "%",
         "note": "of calls made: LiteLLM cancels logging callbacks still in flight when asyncio.run() returns"},
        {"metric": "  same, of the events LiteLLM handed to the logger", "ours": med("exit_async_of_received_ours"),
         "baseline": med("exit_async_of_received_builtin"), "unit": "%", "target": "100",
         "note": "await sqs_logger.aflush() before leaving the loop makes it 100% of calls"},
        {"metric": f"events delivered through a {OUTAGE_S:.0f} s SQS outage", "ours": med("outage_delivered_ours"),
         "baseline": med("outage_delivered_builtin"), "unit": "%", "target": "100",
         "note": "endpoint killed and restarted mid-traffic"},
    ]  # fmt: skip


async def merged(*scenarios: Any) -> dict[str, float]:
    result: dict[str, float] = {}
    for part in await asyncio.gather(*scenarios):
        result.update(part)
    return result


async def all_runs(endpoints: Endpoints, args: argparse.Namespace) -> list[dict[str, float]]:
    """One event loop for everything (LiteLLM caches its async HTTP client per loop); sync work on a thread."""
    queues = Queues(endpoints)
    await warm_up()
    runs: list[dict[str, float]] = []
    for run in range(args.runs):
        started = time.monotonic()
        result: dict[str, float] = {}
        phases = [
            ("load", lambda: scenario_async_load(endpoints, queues, args.calls)),
            ("sync", lambda: asyncio.to_thread(scenario_sync, endpoints, queues, args.sync_calls)),
            # Delivery only (no timing) in these two, so they may share the machine.
            ("outage_and_exit", lambda: merged(
                scenario_outage(endpoints, queues, args.outage_rate, args.outage_window),
                asyncio.to_thread(scenario_abrupt_exit, endpoints, queues, args.exit_calls, "sync"),
                asyncio.to_thread(scenario_abrupt_exit, endpoints, queues, args.exit_calls, "async"),
            )),
        ]  # fmt: skip
        for name, phase in phases:
            phase_started = time.monotonic()
            result.update(await phase())
            result[f"seconds_{name}"] = round(time.monotonic() - phase_started, 1)
        runs.append(result)
        print(f"run {run + 1}/{args.runs} ({time.monotonic() - started:.0f}s): "
              + ", ".join(f"{k}={v:.3g}" for k, v in result.items()), flush=True)  # fmt: skip
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=600, help="async calls per run for latency and requests")
    parser.add_argument("--sync-calls", type=int, default=250)
    parser.add_argument("--exit-calls", type=int, default=200)
    parser.add_argument("--outage-rate", type=int, default=100, help="calls per second during the outage scenario")
    parser.add_argument("--outage-window", type=float, default=6.0, help="seconds of traffic around the outage")
    args = parser.parse_args(argv)

    import litellm

    litellm.suppress_debug_info = True
    logging.getLogger("LiteLLM").setLevel(logging.CRITICAL)  # aws_sqs prints a traceback per dropped event
    warnings.filterwarnings("ignore", message="coroutine 'CustomBatchLogger.periodic_flush' was never awaited")
    workdir = Path(tempfile.mkdtemp(prefix="bench-callback-"))
    endpoints = Endpoints(workdir).start()
    try:
        runs = asyncio.run(all_runs(endpoints, args))
    finally:
        endpoints.stop()
    write_result(
        "callback",
        "Publishing to SQS: litellm-mlflow callback vs LiteLLM's built-in aws_sqs",
        COMMAND,
        rows_from(runs, args.calls, args.exit_calls),
        runs=len(runs),
        extra={"per_run": runs, "builtin_flush_interval_s": BUILTIN_FLUSH_INTERVAL_S},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
