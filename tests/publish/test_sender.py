"""SqsBatchSender against an in-process fake SQS client: several batches in flight, bounded; flush waits for the
requests in flight; a full buffer sheds prompts before events, and failures last."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from litellm_mlflow.publish.sender import SqsBatchSender


@dataclass
class Message:
    body: str
    attributes: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.body)


def encode(payload) -> Message:
    return Message(json.dumps(payload))


class SlowSqs:
    """Answers SendMessageBatch after `delay_s` (or once `gate` is set), recording how many calls overlap."""

    def __init__(self, delay_s: float = 0.0, gate: threading.Event | None = None) -> None:
        self.delay_s = delay_s
        self.gate = gate
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.bodies: list[dict] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict]) -> dict:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        time.sleep(self.delay_s)
        with self.lock:
            self.active -= 1
            self.bodies.extend(json.loads(entry["MessageBody"]) for entry in Entries)
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries]}


def event(i: int, status: str = "success") -> dict:
    return {"id": f"e{i}", "status": status, "response_cost": 0.01, "metadata": {"user_api_key_user_id": "u1"},
            "messages": [{"role": "user", "content": "x" * 100}], "response": {"choices": []}}  # fmt: skip


def sender_for(client, **kwargs) -> SqsBatchSender:
    return SqsBatchSender(queue_url="https://sqs.us-east-1.amazonaws.com/1/q", encode=encode,
                          client_factory=lambda url: client, **kwargs)  # fmt: skip


def test_several_batches_are_in_flight_at_once_and_no_more_than_the_setting() -> None:
    client = SlowSqs(delay_s=0.05)
    sender = sender_for(client, max_in_flight=4, linger_s=0)
    started = time.monotonic()
    for i in range(400):
        sender.submit(event(i))
    assert sender.flush(timeout=30), sender.stats()
    elapsed = time.monotonic() - started
    assert sorted(body["id"] for body in client.bodies) == sorted(f"e{i}" for i in range(400))
    assert client.max_active == 4
    assert elapsed < 40 * 0.05 * 0.75, f"{elapsed:.2f}s: no faster than one batch at a time"
    assert sender.stats()["requests"] >= 40 and sender.in_flight == 0


def test_flush_waits_for_every_request_in_flight() -> None:
    gate = threading.Event()
    client = SlowSqs(gate=gate)
    sender = sender_for(client, max_in_flight=3, linger_s=0)
    for i in range(30):
        sender.submit(event(i))
    deadline = time.monotonic() + 10
    while client.active < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.active == 3
    assert sender.flush(timeout=0.2) is False and sender.stats()["pending"] == 30
    gate.set()
    assert sender.flush(timeout=10)
    assert len(client.bodies) == 30 and sender.stats()["sent"] == 30


def test_a_full_buffer_drops_prompts_first_then_successes_and_keeps_failures_longest(caplog) -> None:
    client = SlowSqs()
    reachable = threading.Event()

    def factory(url: str) -> SlowSqs:
        if not reachable.is_set():
            raise ConnectionError("SQS is down")
        return client

    sender = SqsBatchSender(queue_url="https://sqs.us-east-1.amazonaws.com/1/q", encode=encode,
                            buffer_size=4, linger_s=0, client_factory=factory)  # fmt: skip
    accepted = [sender.submit(event(i)) for i in range(8)]  # 4 whole, 4 without content
    accepted += [sender.submit(event(8)), sender.submit(event(9, status="failure"))]
    assert accepted == [True] * 8 + [False, True]
    stats = sender.stats()
    assert (stats["enqueued"], stats["degraded_overflow"], stats["dropped_overflow"]) == (9, 5, 1)
    assert "kept WITHOUT prompts and responses" in caplog.text and "1 DROPPED" in caplog.text

    reachable.set()  # flush() says False at once while the last attempt's error stands: poll until it is retried
    deadline = time.monotonic() + 30
    while not sender.flush(timeout=1) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sender.stats()["pending"] == 0, sender.stats()
    bodies = {body["id"]: body for body in client.bodies}
    assert sorted(bodies) == sorted(f"e{i}" for i in (0, 1, 2, 3, 4, 5, 6, 7, 9))
    assert all("messages" in bodies[f"e{i}"] and "content_logged" not in bodies[f"e{i}"] for i in range(4))
    for slim in (bodies[f"e{i}"] for i in (4, 5, 6, 7, 9)):
        assert "messages" not in slim and "response" not in slim and slim["content_logged"] is False
        assert slim["response_cost"] == 0.01 and slim["metadata"] == {"user_api_key_user_id": "u1"}
    assert bodies["e9"]["status"] == "failure"
