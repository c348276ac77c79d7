"""One soak caller process: many threads making real LiteLLM SDK calls (mock responses) through our callback.

It records what each call should become in MLflow (event id, model, status, tokens, cost) to a JSONL file, publishes a
chosen share of events twice (SQS at-least-once, made visible), and exits right after its last call: the callback's
exit flush is what gets the tail of its events out.

Run by bench/soak.py: `python -m bench.soak_worker --calls N --threads T --seed S --out FILE`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm
from litellm.integrations.custom_logger import CustomLogger

from litellm_mlflow.callback import sqs_logger

MODELS = ("gpt-4o-mini", "gpt-4o", "anthropic/claude-3-5-haiku-20241022")
USERS = tuple(f"user-{i}" for i in range(12))


class Recorder(CustomLogger):
    """Writes the expected figures of every call, and re-publishes the chosen duplicates through our logger."""

    def __init__(self, out_path: str, duplicate_share: float, seed: int) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.rows: list[dict] = []
        self.out_path = out_path
        self.duplicate_share = duplicate_share
        self.rng = random.Random(seed)

    def _record(self, kwargs, response_obj, start_time, end_time) -> None:
        payload = kwargs.get("standard_logging_object") or {}
        with self.lock:
            duplicate = self.rng.random() < self.duplicate_share
        self.rows_append(
            {
                "event_id": payload.get("id"),
                "call_id": payload.get("litellm_call_id"),
                "model": payload.get("model"),
                "status": payload.get("status"),
                "prompt_tokens": payload.get("prompt_tokens"),
                "completion_tokens": payload.get("completion_tokens"),
                "total_tokens": payload.get("total_tokens"),
                "cost": payload.get("response_cost"),
                "stream": bool(payload.get("stream")),
                "duplicated": duplicate,
            }
        )
        if duplicate:
            sqs_logger.log_success_event(
                kwargs=kwargs, response_obj=response_obj, start_time=start_time, end_time=end_time
            )

    def rows_append(self, row: dict) -> None:
        with self.lock:
            self.rows.append(row)

    def log_success_event(self, kwargs, response_obj, start_time, end_time) -> None:
        self._record(kwargs, response_obj, start_time, end_time)

    def log_failure_event(self, kwargs, response_obj, start_time, end_time) -> None:
        self._record(kwargs, response_obj, start_time, end_time)

    def write(self) -> None:
        with open(self.out_path, "w") as out, self.lock:
            for row in self.rows:
                out.write(json.dumps(row) + "\n")


def one_call(index: int, rng: random.Random, fail_share: float, long_share: float, stream_share: float) -> None:
    model = MODELS[index % len(MODELS)]
    roll = rng.random()
    content = f"call {index}: explain list comprehensions"
    if rng.random() < long_share:
        content += "\n" + "".join(rng.choice("abcdefghij ") for _ in range(rng.randint(200_000, 500_000)))
    kwargs = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "user": USERS[index % len(USERS)],
        "metadata": {"tags": ["soak"]},
    }
    if roll < fail_share:
        with contextlib.suppress(litellm.RateLimitError):
            litellm.completion(mock_response="litellm.RateLimitError", **kwargs)
    elif roll < fail_share + stream_share:
        for _ in litellm.completion(mock_response="streamed answer text", stream=True, **kwargs):
            pass
    else:
        litellm.completion(mock_response=f"answer {index}", **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True)
    parser.add_argument("--fail-share", type=float, default=0.05)
    parser.add_argument("--long-share", type=float, default=0.005)
    parser.add_argument("--stream-share", type=float, default=0.15)
    parser.add_argument("--duplicate-share", type=float, default=0.01)
    args = parser.parse_args()

    recorder = Recorder(args.out, args.duplicate_share, args.seed)
    litellm.callbacks = [sqs_logger, recorder]
    litellm.num_retries = 0

    def run(index: int) -> None:
        one_call(
            index, random.Random(args.seed * 1_000_003 + index), args.fail_share, args.long_share, args.stream_share
        )

    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        list(pool.map(run, range(args.calls)))
    # LiteLLM runs sync logging callbacks on worker threads: wait (with a deadline) until every call is recorded.
    deadline = time.monotonic() + 120
    while len(recorder.rows) < args.calls and time.monotonic() < deadline:
        time.sleep(0.05)
    recorder.write()
    print(json.dumps({"calls": args.calls, "recorded": len(recorder.rows), "stats": sqs_logger.stats()}), flush=True)
    # No explicit flush: the exit flush is part of what the soak proves.


if __name__ == "__main__":
    main()
