"""Consumer Lambda: an SQS batch of LiteLLM call events -> MLflow traces and per-model metrics.

Thin on purpose: decode each record (a bad one fails alone, logged with its message id and the reason, never its
body), hand the good events to the sink in one bulk write, and answer with the records to retry
(`batchItemFailures`, for an event source mapping with ReportBatchItemFailures). The sink is built once per
container, on first use, from MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_NAME.
"""

from __future__ import annotations

import os
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from litellm_mlflow.events import EventDecodeError, LLMCallEvent, decode_body
from litellm_mlflow.sink import MlflowSink
from litellm_mlflow.sink.usage_emf import publish_usage

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "litellm-mlflow-consumer")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "LitellmMlflow")  # the namespace the CDK alarms use

logger = Logger()
metrics = Metrics()

# Stop starting MLflow requests this long before Lambda's own timeout, so the response still goes out.
SAFETY_MARGIN_MS = int(os.environ.get("LITELLM_MLFLOW_SAFETY_MARGIN_MS", "3000"))

_sink: MlflowSink | None = None


def get_sink() -> MlflowSink:
    """The container's sink (built on first use; a bad configuration raises and fails the batch loudly)."""
    global _sink
    if _sink is None:
        _sink = MlflowSink.from_env()
    return _sink


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    records = event.get("Records") or []
    deadline = time.monotonic() + max(0, context.get_remaining_time_in_millis() - SAFETY_MARGIN_MS) / 1000
    failed_ids: list[str] = []
    decoded: list[tuple[str, LLMCallEvent]] = []
    for record in records:
        message_id = record.get("messageId", "?")
        try:
            decoded.append((message_id, decode_body(record.get("body") or "", record.get("messageAttributes"))))
        except EventDecodeError as exc:
            failed_ids.append(message_id)
            logger.warning("undecodable record", extra={"message_id": message_id, "reason": str(exc)})

    result = get_sink().write([event for _, event in decoded], deadline)
    publish_usage([event for _, event in decoded], result)  # per model group / team, stored calls only
    for index, reason in sorted(result.failed.items()):
        message_id = decoded[index][0]
        failed_ids.append(message_id)
        logger.warning(
            "record not stored; SQS will redeliver it",
            extra={"message_id": message_id, "event_id": decoded[index][1].event_id, "reason": reason},
        )

    written = len(records) - len(failed_ids)
    oldest_age = _oldest_age_seconds(records)
    metrics.add_metric(name="BatchSize", unit=MetricUnit.Count, value=len(records))
    metrics.add_metric(name="EventsWritten", unit=MetricUnit.Count, value=written)
    metrics.add_metric(name="EventsFailed", unit=MetricUnit.Count, value=len(failed_ids))
    if oldest_age is not None:
        metrics.add_metric(name="OldestEventAgeSeconds", unit=MetricUnit.Seconds, value=oldest_age)
    logger.info(
        "batch done",
        extra={
            "batch_size": len(records),
            "written": written,
            "failed": len(failed_ids),
            "undecodable": len(records) - len(decoded),
            "trace_requests": result.trace_requests,
            "metric_requests": result.metric_requests,
            "oldest_event_age_s": oldest_age,
        },
    )
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed_ids]}


def _oldest_age_seconds(records: list[dict[str, Any]]) -> float | None:
    """Age of the batch's oldest message, from SQS's own SentTimestamp (epoch ms)."""
    sent = []
    for record in records:
        value = (record.get("attributes") or {}).get("SentTimestamp")
        try:
            sent.append(int(value))
        except (TypeError, ValueError):
            continue
    if not sent:
        return None
    return max(0.0, time.time() - min(sent) / 1000)
