"""The sender's process lifecycle: flush at interpreter exit (after LiteLLM's own queued callbacks ran), and start
clean in a forked worker (gunicorn/uvicorn workers inherit the buffer but not the threads)."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import weakref
from typing import Any, Protocol

logger = logging.getLogger("litellm_mlflow.publish.sender")

EXIT_FLUSH_TIMEOUT_ENV = "LITELLM_MLFLOW_EXIT_FLUSH_TIMEOUT_S"


class ExitAware(Protocol):
    @property
    def has_events(self) -> bool: ...

    def close(self, timeout: float = ...) -> bool: ...

    def reset_after_fork(self) -> None: ...


_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()


def register(sender: ExitAware) -> None:
    """Flush `sender` at exit and reset it in forked children, for as long as it lives."""
    _LIVE.add(sender)


def exit_flush_timeout() -> float:
    """How long exit-time flushes may wait for SQS (LITELLM_MLFLOW_EXIT_FLUSH_TIMEOUT_S, default 30 s)."""
    try:
        return float(os.environ.get(EXIT_FLUSH_TIMEOUT_ENV, "30"))
    except ValueError:
        return 30.0


def litellm_logging_worker() -> Any:
    """LiteLLM's global async logging worker, if LiteLLM is loaded (it runs every async logging callback)."""
    module = sys.modules.get("litellm.litellm_core_utils.logging_worker")
    return getattr(module, "GLOBAL_LOGGING_WORKER", None)


def drain_litellm_logging_worker(max_rounds: int = 50) -> None:
    """Run LiteLLM's pending async logging callbacks now, so their events reach our buffer before we flush.

    LiteLLM drains that queue in an atexit handler registered when litellm is imported, i.e. before ours, so it
    would run after our flush; and one drain stops after 200 callbacks or 5 s. Repeating it until the queue is
    empty fixes both (it is idempotent). Callbacks LiteLLM had already started are cancelled when the event loop
    closes and never reach any logger; async programs avoid that with `await logger.aflush()`.
    """
    worker = litellm_logging_worker()
    flush_on_exit = getattr(worker, "_flush_on_exit", None)
    if not callable(flush_on_exit):
        return
    for _ in range(max_rounds):
        queue = getattr(worker, "_queue", None)
        if queue is None or queue.empty():
            return
        before = queue.qsize()
        try:
            flush_on_exit()
        except Exception:
            logger.exception("litellm-mlflow: draining LiteLLM's logging worker at exit failed")
            return
        if queue.qsize() >= before:
            return


@atexit.register
def _flush_all_at_exit() -> None:
    senders = [sender for sender in list(_LIVE) if sender.has_events]
    if not senders:
        return
    drain_litellm_logging_worker()
    for sender in senders:
        sender.close(timeout=exit_flush_timeout())


def _reset_after_fork() -> None:
    for sender in list(_LIVE):
        sender.reset_after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)
