"""Hand-made LLMCallEvents for usage-figure tests: one model group, one team, fixed tokens, cost and latency."""

from __future__ import annotations

from litellm_mlflow.events import LLMCallEvent


def call(event_id: str, *, group: str = "chat", team: str | None = "search", ok: bool = True, **extra) -> LLMCallEvent:
    fields = dict(prompt_tokens=10, completion_tokens=5, cost_usd=0.001, latency=0.25, model_group=group)
    fields.update(extra)
    latency = fields.pop("latency")
    return LLMCallEvent(
        event_id=event_id,
        model=f"{group}-model",
        start_time=1000.0,
        end_time=1000.0 + latency,
        status="success" if ok else "failure",
        team_alias=team,
        **fields,
    )
