"""Flush on the LiteLLM proxy's shutdown, where atexit handlers never run.

uvicorn handles SIGTERM by shutting down gracefully and then re-raising the signal with the default handler restored,
which ends the process without running atexit handlers (and LiteLLM cancels logging callbacks still in flight when
the event loop closes). The last code the proxy runs is its lifespan shutdown, which ends in
`litellm.proxy.proxy_server.proxy_shutdown_event`; it has no hook for custom loggers, so we wrap it (the lifespan
looks the function up by name at shutdown). Outside a proxy, or if LiteLLM renames it, nothing is changed and the
atexit flush remains.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
from collections.abc import Awaitable, Callable

logger = logging.getLogger("litellm_mlflow.publish.proxy_shutdown")

PROXY_MODULE = "litellm.proxy.proxy_server"
HOOKED_FUNCTION = "proxy_shutdown_event"
_MARK = "__litellm_mlflow_flush__"


def install(before_shutdown: Callable[[], Awaitable[object]]) -> bool:
    """Run `before_shutdown()` at the start of the proxy's shutdown event. Idempotent; False outside a proxy."""
    module = sys.modules.get(PROXY_MODULE)
    original = getattr(module, HOOKED_FUNCTION, None)
    if original is None or not inspect.iscoroutinefunction(original):
        return False
    if getattr(original, _MARK, False):
        return True

    @functools.wraps(original)
    async def proxy_shutdown_event(*args, **kwargs):
        try:
            await before_shutdown()
        except Exception:
            logger.exception("litellm-mlflow: flushing on the proxy's shutdown failed")
        return await original(*args, **kwargs)

    setattr(proxy_shutdown_event, _MARK, True)
    setattr(module, HOOKED_FUNCTION, proxy_shutdown_event)
    logger.debug("litellm-mlflow: will flush on the proxy's shutdown")
    return True
