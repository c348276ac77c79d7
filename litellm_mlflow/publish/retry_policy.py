"""When and how soon the sender retries: exponential backoff with jitter, and which errors a retry cannot fix.

Everything SQS or the network can get wrong for a while (outage, throttling, credentials, a missing queue) is
retried for as long as it takes; an error caused by a message itself is isolated to that message, which is given up
on after `SENDER_FAULT_ATTEMPTS` rejections.
"""

from __future__ import annotations

import random

SENDER_FAULT_ATTEMPTS = 5  # an entry SQS rejects as malformed this often is reported as lost, loudly
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 5.0
# Whole-call errors caused by a message itself (retrying the same batch cannot help; the culprit is isolated).
MESSAGE_FAULT_CODES = frozenset(
    {"InvalidParameterValue", "InvalidMessageContents", "BatchRequestTooLong", "MessageTooLong",
     "InvalidAttributeName", "InvalidAttributeValue"}
)  # fmt: skip


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, without its namespace ("" for any other exception)."""
    response = getattr(exc, "response", None)
    code = str((response or {}).get("Error", {}).get("Code") or "") if isinstance(response, dict) else ""
    return code.rsplit(".", 1)[-1]  # "AWS.SimpleQueueService.BatchRequestTooLong" -> "BatchRequestTooLong"


def is_message_fault(exc: BaseException) -> bool:
    """True when the whole call failed because of what one of its messages contains."""
    return error_code(exc) in MESSAGE_FAULT_CODES


def backoff(attempt: int) -> float:
    """Seconds to wait before retry number `attempt + 1`: exponential, half fixed and half random, capped."""
    delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2 ** min(attempt, 30)))
    return delay / 2 + random.uniform(0, delay / 2)
