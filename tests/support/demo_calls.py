"""The demo's traffic made with LiteLLM's SDK Router instead of the proxy (seconds, no proxy process): the same model
groups, deployments, keys' team/user/org identity, sessions and request tags, as real LiteLLM payloads. Plus one call
with prompt-cache and reasoning tokens, which no mock the proxy can be configured with reports."""

from __future__ import annotations

import litellm
from litellm.types.utils import ModelResponse, Usage

from litellm_mlflow.local import wiring
from litellm_mlflow.local.demo_keys import ORG_ALIAS, ORG_ID
from litellm_mlflow.local.demo_traffic import PlannedRequest, plan_requests
from tests.support.litellm_events import PayloadCapture

CACHED_MODEL_GROUP = "claude-sonnet"
CACHED_USAGE = {
    "prompt_tokens": 2000, "completion_tokens": 300, "total_tokens": 2300,
    "cache_read_input_tokens": 1500, "cache_creation_input_tokens": 200,
    "prompt_tokens_details": {"cached_tokens": 1500, "cache_creation_tokens": 200},
    "completion_tokens_details": {"reasoning_tokens": 120},
}  # fmt: skip


def key_metadata(plan: PlannedRequest) -> dict:
    """What the proxy's auth puts in a call's metadata for the plan's key (LiteLLM's `user_api_key_*` fields)."""
    key = plan.key
    return {
        "user_api_key_alias": key.key_alias, "user_api_key_user_id": key.user_id,
        "user_api_key_team_id": key.team_id, "user_api_key_team_alias": key.team_alias,
        "user_api_key_org_id": ORG_ID, "user_api_key_org_alias": ORG_ALIAS,
        "user_api_key_end_user_id": plan.end_user, "tags": [f"kind:{plan.kind}"],
    }  # fmt: skip


def send_plan(router: litellm.Router, plan: PlannedRequest) -> None:
    kwargs: dict = {"model": plan.model, "messages": plan.messages, "metadata": key_metadata(plan)}
    if plan.session_id:
        kwargs["litellm_session_id"] = plan.session_id
    if plan.tools:
        kwargs["tools"] = plan.tools
    if plan.end_user:
        kwargs["user"] = plan.end_user
    try:
        if plan.stream:
            for _ in router.completion(stream=True, **kwargs):
                pass
        else:
            router.completion(**kwargs)
    except litellm.RateLimitError:
        assert not plan.expect_success


def demo_payloads(capture: PayloadCapture, count: int = 30, seed: int = 7) -> tuple[list[PlannedRequest], list[dict]]:
    """`count` planned demo requests plus one prompt-cached call; (plans, payloads) once LiteLLM logged them all."""
    router = litellm.Router(model_list=wiring.proxy_config()["model_list"], num_retries=0)
    plans = [plan for plan in plan_requests(count, seed=seed) if plan.kind != "long"]
    for plan in plans:
        send_plan(router, plan)
    cached = PlannedRequest(model=CACHED_MODEL_GROUP, user="alice", messages=plans[0].messages, kind="cached",
                            session_id="alice-task-1")  # fmt: skip
    response = ModelResponse(
        model="claude-sonnet-4-5",
        choices=[{"index": 0, "message": {"role": "assistant", "content": "From cache."}, "finish_reason": "stop"}],
        usage=Usage(**CACHED_USAGE),
    )
    litellm.completion(
        model="anthropic/claude-sonnet-4-5", messages=cached.messages, mock_response=response,
        metadata={**key_metadata(cached), "model_group": CACHED_MODEL_GROUP}, litellm_session_id=cached.session_id,
    )  # fmt: skip
    return [*plans, cached], capture.wait_for(len(plans) + 1)
