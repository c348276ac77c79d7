"""A real LiteLLM proxy under fixed offered load, three ways side by side: no logging callback, LiteLLM's built-in
`aws_sqs`, and ours, each publishing to a delaying SQS endpoint on 127.0.0.1 (15 and 40 ms round trip).

Three proxies (`litellm --num_workers N`, mock model, our callback configured as the README says) start once. Each
step (an offered rate and SQS delay) runs in rounds: every round gives each way one slice of `--slice-s` seconds, in
an order rotated from round to round, so the machine's slow and fast moments fall on the three ways alike (a shared
2-vCPU machine drifts between them over tens of seconds). An open-loop load generator sends requests at a fixed rate
whatever the answers' speed, on connections kept open for the whole run. Per step, over all its slices pooled: the
proxy's achieved requests/s, p50/p99 latency, CPU per request (the proxy's whole process tree, from /proc). At the
end: events delivered / calls made per publisher (distinct LiteLLM call ids in the queue) and each publisher's SQS
requests, after the proxies shut down gracefully (SIGTERM: our callback flushes; aws_sqs flushes every second,
`sqs_flush_interval=1`).

    python -m bench.bench_proxy [--workers 2] [--rates 10,20] [--delays 15,40] [--slice-s 5] [--rounds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import percentile, write_result
from bench.delaying_sqs import DelayingSqs
from litellm_mlflow.local import wiring
from litellm_mlflow.local.servers import LitellmProxyServer, offline_env

COMMAND = "python -m bench.bench_proxy"
MODES = ("none", "aws_sqs", "ours")
MASTER_KEY = "sk-bench-proxy"
MODEL = {"model_name": "gpt-4o-mini", "litellm_params": {"model": "openai/gpt-4o-mini", "mock_response": "Sure."}}
REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Summarise the release notes."}]}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` and all its live descendants (uvicorn's workers)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        if current in stats:
            total += (int(stats[current][11]) + int(stats[current][12])) / CLOCK_TICKS
        stack.extend(children.get(current, []))
    return total


def proxy_for(mode: str, sqs: DelayingSqs, workdir: Path, workers: int, ours_env: dict[str, str]) -> LitellmProxyServer:
    callbacks = {"none": None, "aws_sqs": None, "ours": wiring.CALLBACK_PATH}[mode]
    config = wiring.proxy_config([MODEL], callbacks=callbacks, custom_auth=None)
    if mode == "aws_sqs":
        config["litellm_settings"]["callbacks"] = ["aws_sqs"]
        config["litellm_settings"]["aws_sqs_callback_params"] = {
            "sqs_queue_url": sqs.queue_url("aws_sqs"), "sqs_region_name": "us-east-1", "sqs_flush_interval": 1,
        }  # fmt: skip
    env = {
        **offline_env(),
        **wiring.proxy_env(sqs.url, sqs.queue_url("ours"), MASTER_KEY),
        "LITELLM_LOG": "ERROR",
        **(ours_env if mode == "ours" else {}),
    }
    return LitellmProxyServer(workdir, config, env, workers=workers, name=f"proxy-{mode}")


async def offered_load(client: httpx.AsyncClient, rate: float, seconds: float) -> dict[str, Any]:
    """Open loop: request i starts at i / rate whatever the earlier ones do; latencies of successful answers."""
    latencies: list[float] = []
    failures = 0

    async def one() -> None:
        nonlocal failures
        started = time.perf_counter()
        try:
            response = await client.post("/chat/completions", json=REQUEST)
            ok = response.status_code == 200
        except httpx.HTTPError:
            ok = False
        if ok:
            latencies.append(time.perf_counter() - started)
        else:
            failures += 1

    count = int(rate * seconds)
    t0 = time.perf_counter()
    tasks = []
    for i in range(count):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    elapsed = max(time.perf_counter() - t0, seconds)
    return {"sent": count, "ok": len(latencies), "failed": failures, "elapsed_s": elapsed, "latencies": latencies}


def client_for(proxy: LitellmProxyServer) -> httpx.AsyncClient:
    """One client per proxy for the whole run: its connections stay open between slices, as a busy caller's do."""
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    return httpx.AsyncClient(base_url=proxy.url, headers=headers, timeout=60, limits=limits)


async def one_slice(proxy: LitellmProxyServer, client: httpx.AsyncClient, rate: float, seconds: float) -> dict:
    cpu_before = tree_cpu_s(proxy.proc.pid)
    result = await offered_load(client, rate, seconds)
    result["cpu_s"] = tree_cpu_s(proxy.proc.pid) - cpu_before
    return result


def pooled(slices: list[dict]) -> dict[str, float]:
    """One step's figures over all its slices: percentiles of every latency, rates and CPU from the sums."""
    latencies = [latency for part in slices for latency in part["latencies"]]
    ok = sum(part["ok"] for part in slices)
    return {
        "sent": sum(part["sent"] for part in slices),
        "ok": ok,
        "failed": sum(part["failed"] for part in slices),
        "achieved": ok / sum(part["elapsed_s"] for part in slices),
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "cpu_ms_per_request": sum(part["cpu_s"] for part in slices) * 1000 / max(1, ok),
    }


def wait_quiet(sqs: DelayingSqs, seconds: float = 3.0, timeout: float = 60.0) -> dict:
    """Stats once nothing new arrived for `seconds` (both publishers send in the background)."""
    deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        stats = sqs.stats()
        if stats != last:
            last, since = stats, time.monotonic()
        elif time.monotonic() - since >= seconds:
            break
        time.sleep(0.5)
    return last or {}


NOTES = [
    "Three proxies (litellm --num_workers 2, one mock model) started once. Each step (offered rate, SQS delay) is "
    "measured in rounds: every round gives each way one slice of --slice-s seconds, in an order rotated from round "
    "to round, so the machine's slow and fast moments fall on all three alike. Percentiles are over every answer of "
    "the step's slices pooled; the load generator runs on the same 2-vCPU machine.",
    "CPU per request is the proxy's whole process tree (from /proc) over the requests answered.",
    "Delivered = distinct LiteLLM call ids in each publisher's queue after a graceful proxy shutdown, over "
    "all calls made (warm-up included).",
]


async def measure(proxies, sqs, rates, delays, rounds, slice_s, calls, samples) -> None:
    clients = {mode: client_for(proxy) for mode, proxy in proxies.items()}
    try:
        for mode in MODES:  # warm-up: every worker's lazy imports and first connections
            for rate in (10, 20):
                warm = await offered_load(clients[mode], rate, 2.0)
                calls[mode] += warm["ok"] + warm["failed"]
        for delay in delays:
            sqs.set_delay(delay)
            for rate in rates:
                for round_index in range(rounds):
                    shift = round_index % len(MODES)
                    for mode in MODES[shift:] + MODES[:shift]:
                        part = await one_slice(proxies[mode], clients[mode], rate, slice_s)
                        calls[mode] += part["ok"] + part["failed"]
                        samples.setdefault((mode, delay, rate), []).append(part)
                for mode in MODES:
                    figures = pooled(samples[(mode, delay, rate)])
                    print(f"{mode:8s} {delay:g} ms {rate:g}/s: " + ", ".join(f"{k}={v:.4g}" for k, v in
                          figures.items()), flush=True)  # fmt: skip
    finally:
        for client in clients.values():
            await client.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="proxy worker processes (litellm --num_workers)")
    parser.add_argument("--rates", default="10,20", help="offered requests/s, comma-separated")
    parser.add_argument("--delays", default="15,40", help="SQS round trips in ms, comma-separated")
    parser.add_argument("--slice-s", type=float, default=5.0, help="seconds each way runs before the next takes over")
    parser.add_argument("--rounds", type=int, default=6, help="slices per way and step (pooled)")
    parser.add_argument(
        "--ours-env", action="append", default=[], metavar="NAME=VALUE",
        help="a setting for our callback's proxy only, e.g. LITELLM_MLFLOW_BATCH_LINGER_MS=1000",
    )  # fmt: skip
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    delays = [float(d) for d in args.delays.split(",")]

    workdir = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    sqs = DelayingSqs(delays[0], workdir)
    ours_env = dict(item.split("=", 1) for item in args.ours_env)
    proxies = {mode: proxy_for(mode, sqs, workdir, args.workers, ours_env) for mode in MODES}
    samples: dict[tuple[str, float, float], list[dict]] = {}
    calls = dict.fromkeys(MODES, 0)
    try:
        for proxy in proxies.values():
            proxy.launch()
        for proxy in proxies.values():
            proxy.wait_ready(300)
        asyncio.run(measure(proxies, sqs, rates, delays, args.rounds, args.slice_s, calls, samples))
        wait_quiet(sqs)
    finally:
        for proxy in proxies.values():
            proxy.stop()
    final = wait_quiet(sqs)
    sqs.stop()
    overflow_lines = sum(
        line.count("event buffer full")
        for line in (workdir / "proxy-ours.log").read_text(errors="replace").splitlines()
    )
    figures = {key: pooled(parts) for key, parts in samples.items()}
    rows = rows_from(figures, rates, delays, calls, final, overflow_lines)
    command = COMMAND if not argv else f"{COMMAND} {' '.join(argv)}"
    title = f"A real LiteLLM proxy ({args.workers} workers, mock model): no callback vs aws_sqs vs ours"
    per_slice = {
        "|".join(map(str, key)): [{k: v for k, v in part.items() if k != "latencies"} for part in parts]
        for key, parts in samples.items()
    }
    extra = {"slices": per_slice, "sqs": final, "notes": NOTES}
    how = f"{args.rounds} rounds of {args.slice_s:g} s slices a way, pooled"
    write_result("proxy", title, command, rows, runs=args.rounds, extra=extra, how=how)
    return 0


FIGURES = (
    ("achieved", "req/s", "achieved"),
    ("p50_ms", "ms", "p50 latency"),
    ("p99_ms", "ms", "p99 latency"),
    ("cpu_ms_per_request", "ms", "CPU/request"),
)


def rows_from(figures, rates, delays, calls, final, overflow_lines) -> list[dict]:
    def med(mode: str, delay: float, rate: float, key: str) -> float:
        return round(figures[(mode, delay, rate)][key], 2)

    rows: list[dict] = []
    for delay in delays:
        for rate in rates:
            for key, unit, label in FIGURES:
                for mode in ("ours", "aws_sqs"):
                    rows.append({"metric": f"{label} at {rate:g} req/s offered, SQS {delay:g} ms: {mode} vs none",
                                 "ours": med(mode, delay, rate, key), "baseline": med("none", delay, rate, key),
                                 "unit": unit})  # fmt: skip
    for mode in ("ours", "aws_sqs"):
        stats = final.get(mode, {"calls": 0, "requests": 0, "messages": 0})
        rows.append({"metric": f"{mode}: events delivered / calls made", "ours": round(100 * stats["calls"] /
                     max(1, calls[mode]), 2), "unit": "%", "target": "100" if mode == "ours" else None,
                     "note": f"{stats['calls']} of {calls[mode]}; {stats['requests']} SQS requests, "
                             f"{stats['messages']} messages"})  # fmt: skip
    ours, builtin = final.get("ours", {}), final.get("aws_sqs", {})
    rows.append({"metric": "SQS requests per delivered event: ours vs aws_sqs",
                 "ours": round(ours.get("requests", 0) / max(1, ours.get("calls", 0)), 3),
                 "baseline": round(builtin.get("requests", 0) / max(1, builtin.get("calls", 0)), 3),
                 "unit": "requests/event", "note": "counted by the SQS endpoint"})  # fmt: skip
    rows.append({"metric": "ours: overflow errors in the proxy's log", "ours": overflow_lines, "unit": "lines",
                 "target": "0"})  # fmt: skip
    return rows


if __name__ == "__main__":
    sys.exit(main())
