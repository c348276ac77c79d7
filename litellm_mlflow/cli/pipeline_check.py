"""`litellm-mlflow check`: publish one synthetic event and wait, with a deadline, until MLflow shows it.

The workshop's `manage-mlflow.sh test`, for the local or the deployed stack. When the event does not arrive the
result says where it is stuck: still in the queue (is the consumer running?), in the DLQ (the consumer rejected it),
or gone from both (look at the consumer's logs and the experiment name).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from litellm_mlflow.events import encode_event

CHECK_MODEL = "litellm-mlflow-check"


@dataclass(frozen=True)
class CheckTarget:
    queue_url: str
    tracking_uri: str
    experiment: str = "litellm-monitoring"
    dlq_url: str | None = None
    sqs_endpoint: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    check_id: str
    seconds: float
    reason: str = ""


def synthetic_payload(check_id: str, now: float | None = None) -> dict[str, Any]:
    """A minimal StandardLoggingPayload that every stage accepts and that is easy to find again."""
    end = time.time() if now is None else now
    return {
        "id": check_id,
        "litellm_call_id": check_id,
        "call_type": "completion",
        "model": CHECK_MODEL,
        "custom_llm_provider": "litellm-mlflow",
        "status": "success",
        "startTime": end - 0.25,
        "endTime": end,
        "completionStartTime": end,
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "total_tokens": 5,
        "response_cost": 0.0,
        "messages": [{"role": "user", "content": "litellm-mlflow check"}],
        "response": {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]},
        "request_tags": ["litellm-mlflow-check"],
        "metadata": {},
    }


def run_check(
    target: CheckTarget,
    sqs: Any,
    find_trace: Callable[[str], bool],
    timeout_s: float = 120.0,
    progress: Callable[[str], None] = lambda message: None,
) -> CheckResult:
    """Send the event with `sqs` (a boto3 SQS client), then poll `find_trace(check_id)` until true or the deadline."""
    check_id = f"litellm-mlflow-check-{uuid.uuid4()}"
    started = time.monotonic()
    message = encode_event(synthetic_payload(check_id))
    sqs.send_message(QueueUrl=target.queue_url, MessageBody=message.body, MessageAttributes=message.attributes)
    progress(f"published event {check_id} to {target.queue_url}")
    delay = 0.25
    while time.monotonic() - started < timeout_s:
        if find_trace(check_id):
            return CheckResult(True, check_id, time.monotonic() - started)
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
    return CheckResult(False, check_id, time.monotonic() - started, _where_is_it(target, sqs, timeout_s))


def _depth(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _where_is_it(target: CheckTarget, sqs: Any, timeout_s: float) -> str:
    waited = f"not visible in MLflow (experiment {target.experiment!r}) after {timeout_s:.0f}s"
    try:
        in_queue = _depth(sqs, target.queue_url)
        in_dlq = _depth(sqs, target.dlq_url) if target.dlq_url else 0
    except Exception as exc:  # The diagnosis is best effort; the verdict stands without it.
        return f"{waited}; could not read the queue depth ({exc})"
    if in_dlq:
        return f"{waited}; the dead-letter queue holds {in_dlq} message(s): the consumer rejected events, see its logs"
    if in_queue:
        return f"{waited}; {in_queue} message(s) still in the queue: is the consumer running and able to reach MLflow?"
    return f"{waited}; the queue is empty: check the consumer's logs and its MLFLOW_EXPERIMENT_NAME"


def trace_finder(tracking_uri: str, experiment: str) -> Callable[[str], bool]:
    """find_trace for run_check: is the check event's trace in the experiment? Check traces are named after
    CHECK_MODEL (a filter every server version answers); the event id is the trace's client request id (or, on
    servers the consumer writes through the v2 calls, its `event_id` tag)."""
    from litellm_mlflow.mlflow_queries import search_traces

    def find(check_id: str) -> bool:
        try:
            traces = search_traces(tracking_uri, experiment, f"trace.name = '{CHECK_MODEL}'")
        except Exception:  # MLflow briefly unreachable: keep polling until the deadline.
            return False
        return any(check_id in (t.info.client_request_id, t.info.tags.get("event_id")) for t in traces)

    return find
