"""The demo's API keys, teams and org, checked by LiteLLM's own `custom_auth` hook of the proxy.

LiteLLM's virtual keys and teams (`/key/generate`, `/team/new`) live in the proxy's PostgreSQL database through
Prisma, whose query engine is downloaded at `prisma generate` time from outside any package registry: more than a
one-machine, offline demo can carry. `general_settings.custom_auth` is LiteLLM's documented way to authenticate
without that database: the function returns the same `UserAPIKeyAuth` a virtual key would resolve to, so team id and
alias, key alias, user and org reach the logging payload (`metadata.user_api_key_*`) exactly as with real keys.
The master key stays the admin key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

CUSTOM_AUTH_PATH = "litellm_mlflow.local.demo_keys.user_api_key_auth"
ORG_ID, ORG_ALIAS = "org-acme", "Acme"


@dataclass(frozen=True)
class DemoKey:
    key: str
    key_alias: str
    user_id: str
    team_id: str
    team_alias: str


DEMO_KEYS = (
    DemoKey("sk-demo-search-ci", "search-ci", "alice", "team-search", "Search"),
    DemoKey("sk-demo-search-dev", "search-dev", "bob", "team-search", "Search"),
    DemoKey("sk-demo-billing-app", "billing-app", "carol", "team-billing", "Billing"),
)
KEY_BY_USER = {demo.user_id: demo for demo in DEMO_KEYS}


async def user_api_key_auth(request: Any, api_key: str) -> Any:
    """LiteLLM's custom_auth hook: a demo key becomes its team/key/user/org; the master key is the proxy admin."""
    from fastapi import HTTPException
    from litellm.proxy._types import LitellmUserRoles, UserAPIKeyAuth

    if api_key == os.environ.get("LITELLM_MASTER_KEY"):
        return UserAPIKeyAuth(api_key=api_key, user_role=LitellmUserRoles.PROXY_ADMIN)
    for demo in DEMO_KEYS:
        if api_key == demo.key:
            return UserAPIKeyAuth(
                api_key=api_key,
                key_alias=demo.key_alias,
                user_id=demo.user_id,
                team_id=demo.team_id,
                team_alias=demo.team_alias,
                org_id=ORG_ID,
                organization_alias=ORG_ALIAS,
            )
    raise HTTPException(status_code=401, detail="unknown demo key")
