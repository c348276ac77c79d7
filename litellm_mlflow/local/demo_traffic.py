"""A realistic mix of requests for the local stack: several model groups, three keys of two teams, coding-agent
sessions, an app's end users, streaming, a tool call, failures, an unpriced model.

Sent through the LiteLLM proxy with the OpenAI client, as a coding agent or an app would: each with its own key,
its session id in `litellm_session_id` (or the `x-litellm-session-id` header, as agents send it), and one request tag
`kind:<kind>` (a fixed set of values, never a per-request key). Each request knows what it expects to see in MLflow
(model group, status, user, team, session), so the demo and the end-to-end test can check every one; they find it by
LiteLLM's call id (the `x-litellm-call-id` response header).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from litellm_mlflow.local.demo_keys import KEY_BY_USER, DemoKey
from litellm_mlflow.local.wiring import UNPRICED_MODEL_GROUP

USERS = ("alice", "bob", "carol")
# carol's key belongs to the billing app, which passes its own customers as the OpenAI `user` (LiteLLM's end user).
APP_USER = "carol"
SESSION_HEADER = "x-litellm-session-id"
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
    """One request to send and what it should become in MLflow (`model` is the model group clients call)."""

    model: str
    user: str
    messages: list[dict[str, Any]]
    stream: bool = False
    tools: list[dict[str, Any]] | None = None
    expect_success: bool = True
    kind: str = "chat"
    session_id: str | None = None
    end_user: str | None = None

    @property
    def key(self) -> DemoKey:
        return KEY_BY_USER[self.user]


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
    """A deterministic mix: ~40% short chats, 15% multi-turn, 15% streaming, 10% tool calls, 10% failures,
    5% unpriced, 5% a long coding-agent style prompt. Each user works in two sessions (tasks); every seventh
    request carries no session, and the billing app's requests name an end user."""
    rng = random.Random(seed)
    kinds = (["chat"] * 8 + ["multi_turn"] * 3 + ["stream"] * 3 + ["tool"] * 2 + ["failure"] * 2 + ["unpriced"]
             + ["long"])  # fmt: skip
    plans = []
    for index in range(count):
        kind = kinds[index % len(kinds)] if index < len(kinds) else rng.choice(kinds)
        user = USERS[index % len(USERS)]
        session = None if index % 7 == 6 else f"{user}-task-{(index // len(USERS)) % 2 + 1}"
        end_user = f"customer-{index % 4}" if user == APP_USER else None
        who = {"user": user, "session_id": session, "end_user": end_user, "kind": kind}
        question = {"role": "user", "content": f"Question {index}: how do I reverse a list in Python?"}
        if kind == "chat":
            model = rng.choice(["gpt-4o-mini", "gpt-4o", "claude-sonnet"])
            plans.append(PlannedRequest(model=model, messages=[question], **who))
        elif kind == "multi_turn":
            messages = [
                {"role": "system", "content": "You are a concise coding assistant."},
                question,
                {"role": "assistant", "content": "Use reversed() or slicing."},
                {"role": "user", "content": "Show me slicing."},
            ]
            plans.append(PlannedRequest(model="gpt-4o", messages=messages, **who))
        elif kind == "stream":
            plans.append(PlannedRequest(model="claude-sonnet", messages=[question], stream=True, **who))
        elif kind == "tool":
            ask = {"role": "user", "content": "What's the weather in Tokyo?"}
            plans.append(PlannedRequest(model="tools", messages=[ask], tools=[WEATHER_TOOL], **who))
        elif kind == "failure":
            plans.append(PlannedRequest(model="flaky", messages=[question], expect_success=False, **who))
        elif kind == "unpriced":
            plans.append(PlannedRequest(model=UNPRICED_MODEL_GROUP, messages=[question], **who))
        else:
            source = "\n".join(f"def f{i}(x):\n    return x * {i}\n" for i in range(2000))
            long_prompt = {"role": "user", "content": f"Review this file:\n{source}"}
            plans.append(PlannedRequest(model="gpt-4o-mini", messages=[long_prompt], **who))
    return plans


def send_request(client: Any, plan: PlannedRequest) -> SentRequest:
    """Send one planned request; failures are recorded, not raised (a failure is part of the mix)."""
    import openai

    body: dict[str, Any] = {"metadata": {"tags": [f"kind:{plan.kind}"]}}
    headers: dict[str, str] = {}
    if plan.session_id and plan.session_id.endswith("-1"):
        headers[SESSION_HEADER] = plan.session_id  # as coding agents send it
    elif plan.session_id:
        body["litellm_session_id"] = plan.session_id
    kwargs: dict[str, Any] = {
        "model": plan.model,
        "messages": plan.messages,
        "extra_body": body,
        "extra_headers": headers,
    }
    if plan.end_user:
        kwargs["user"] = plan.end_user
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
    plans: list[PlannedRequest],
    concurrency: int = 8,
    on_sent: Callable[[SentRequest], None] | None = None,
) -> TrafficReport:
    """Send every planned request through the proxy, each with its user's key, `concurrency` at a time."""
    import openai

    clients = {
        user: openai.OpenAI(base_url=f"{proxy_url}/v1", api_key=demo.key, max_retries=0, timeout=60)
        for user, demo in KEY_BY_USER.items()
    }
    report = TrafficReport()
    lock = threading.Lock()

    def one(plan: PlannedRequest) -> None:
        result = send_request(clients[plan.user], plan)
        with lock:
            report.sent.append(result)
        if on_sent:
            on_sent(result)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, plans))
    return report
