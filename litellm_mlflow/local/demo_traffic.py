"""A realistic mix of requests for the local stack: several models, users and tags, streaming, a tool call, failures.

Sent through the LiteLLM proxy with the OpenAI client, as a coding agent or an app would. Each request knows what
it expects to see in MLflow (model, status, user), so the demo and the end-to-end test can check every one.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

USERS = ("alice", "bob", "carol")
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@dataclass(frozen=True)
class PlannedRequest:
    """One request to send and what it should become in MLflow."""

    tag: str
    model: str
    user: str
    messages: list[dict[str, Any]]
    stream: bool = False
    tools: list[dict[str, Any]] | None = None
    expect_success: bool = True
    kind: str = "chat"


@dataclass
class SentRequest:
    planned: PlannedRequest
    ok: bool
    status_code: int | None
    call_id: str | None
    error: str | None = None


@dataclass
class TrafficReport:
    sent: list[SentRequest] = field(default_factory=list)

    @property
    def succeeded(self) -> int:
        return sum(1 for r in self.sent if r.ok)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.sent if not r.ok)

    @property
    def unexpected(self) -> list[SentRequest]:
        return [r for r in self.sent if r.ok != r.planned.expect_success]


def plan_requests(count: int, seed: int = 7) -> list[PlannedRequest]:
    """A deterministic mix: ~45% short chats, 15% multi-turn, 15% streaming, 10% tool calls, 10% failures,
    5% a long coding-agent style prompt."""
    rng = random.Random(seed)
    kinds = ["chat"] * 9 + ["multi_turn"] * 3 + ["stream"] * 3 + ["tool"] * 2 + ["failure"] * 2 + ["long"]
    plans = []
    for index in range(count):
        kind = kinds[index % len(kinds)] if index < len(kinds) else rng.choice(kinds)
        user = USERS[index % len(USERS)]
        tag = f"demo-{uuid.uuid4().hex[:8]}"
        question = {"role": "user", "content": f"Question {index}: how do I reverse a list in Python?"}
        if kind == "chat":
            plans.append(PlannedRequest(tag, rng.choice(["gpt-4o-mini", "gpt-4o", "claude-sonnet"]), user, [question]))
        elif kind == "multi_turn":
            messages = [
                {"role": "system", "content": "You are a concise coding assistant."},
                question,
                {"role": "assistant", "content": "Use reversed() or slicing."},
                {"role": "user", "content": "Show me slicing."},
            ]
            plans.append(PlannedRequest(tag, "gpt-4o", user, messages, kind=kind))
        elif kind == "stream":
            plans.append(PlannedRequest(tag, "claude-sonnet", user, [question], stream=True, kind=kind))
        elif kind == "tool":
            ask = {"role": "user", "content": "What's the weather in Tokyo?"}
            plans.append(PlannedRequest(tag, "tools", user, [ask], tools=[WEATHER_TOOL], kind=kind))
        elif kind == "failure":
            plans.append(PlannedRequest(tag, "flaky", user, [question], expect_success=False, kind=kind))
        else:
            source = "\n".join(f"def f{i}(x):\n    return x * {i}\n" for i in range(2000))
            long_prompt = {"role": "user", "content": f"Review this file:\n{source}"}
            plans.append(PlannedRequest(tag, "gpt-4o-mini", user, [long_prompt], kind=kind))
    return plans


def send_request(client: Any, plan: PlannedRequest) -> SentRequest:
    """Send one planned request; failures are recorded, not raised (a failure is part of the mix)."""
    import openai

    kwargs: dict[str, Any] = {
        "model": plan.model,
        "messages": plan.messages,
        "user": plan.user,
        "extra_body": {"metadata": {"tags": [plan.tag, f"kind:{plan.kind}"]}},
    }
    if plan.tools:
        kwargs["tools"] = plan.tools
    try:
        if plan.stream:
            raw = client.chat.completions.with_raw_response.create(stream=True, **kwargs)
            for _ in raw.parse():
                pass
        else:
            raw = client.chat.completions.with_raw_response.create(**kwargs)
            raw.parse()
        return SentRequest(plan, True, raw.http_response.status_code, raw.headers.get("x-litellm-call-id"))
    except openai.APIStatusError as exc:
        call_id = exc.response.headers.get("x-litellm-call-id") if exc.response is not None else None
        return SentRequest(plan, False, exc.status_code, call_id, str(exc)[:200])
    except openai.APIError as exc:
        return SentRequest(plan, False, None, None, str(exc)[:200])


def send_all(
    proxy_url: str,
    api_key: str,
    plans: list[PlannedRequest],
    concurrency: int = 8,
    on_sent: Callable[[SentRequest], None] | None = None,
) -> TrafficReport:
    """Send every planned request through the proxy with `concurrency` parallel OpenAI clients."""
    import openai

    client = openai.OpenAI(base_url=f"{proxy_url}/v1", api_key=api_key, max_retries=0, timeout=60)
    report = TrafficReport()
    lock = threading.Lock()

    def one(plan: PlannedRequest) -> None:
        result = send_request(client, plan)
        with lock:
            report.sent.append(result)
        if on_sent:
            on_sent(result)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, plans))
    return report
