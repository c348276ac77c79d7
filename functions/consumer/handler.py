"""Consumer Lambda: an SQS batch of LiteLLM call events -> MLflow traces (the rollup Lambda summarises them).

Thin on purpose: decode each record into its events (one, or several packed; `sink.record_batch` has the rules), hand
the good events to the sink in one bulk write, and answer with the records to retry (`batchItemFailures`, for an
event source mapping with ReportBatchItemFailures). An event that can never be stored (it does not decode, or no
trace can be built from it) goes to the DLQ at once, without the good events of its record, with its reason when
LITELLM_MLFLOW_DLQ_URL is set, and its record is acknowledged only once the DLQ holds it; metrics count events, each
stored event once. The sink is built once per container, on first use, from MLFLOW_TRACKING_URI and
MLFLOW_EXPERIMENT_NAME.
"""

from __future__ import annotations

import os
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from litellm_mlflow.events import DecodeLimits, LLMCallEvent
from litellm_mlflow.sink import MlflowSink
from litellm_mlflow.sink.dead_letter import DeadLetters, Rejected
from litellm_mlflow.sink.record_batch import decode_records, settle
from litellm_mlflow.sink.usage_emf import publish_usage
from litellm_mlflow.usage_metrics import EVENTS_DEAD_LETTERED

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "litellm-mlflow-consumer")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "LitellmMlflow")  # the namespace the CDK alarms use

logger = Logger()
metrics = Metrics()

# Stop starting MLflow requests this long before Lambda's own timeout, so the response still goes out.
SAFETY_MARGIN_MS = int(os.environ.get("LITELLM_MLFLOW_SAFETY_MARGIN_MS", "3000"))
# Decoded event text held at once per invocation; records beyond it wait for another batch (SQS redelivers them).
BATCH_DECODED_BUDGET = int(os.environ.get("LITELLM_MLFLOW_BATCH_DECODED_BYTES", str(256 * 1024 * 1024)))
LIMITS = DecodeLimits.from_env()

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
    batch = decode_records(records, LIMITS, BATCH_DECODED_BUDGET)
    result = get_sink().write(batch.events, deadline)
    _publish_usage(batch.events, result)
    settled = settle(batch, result, _dead_letter)
    for message_id, event_id, reason in settled.retried:
        logger.warning(
            "event not stored; SQS will redeliver its record",
            extra={"message_id": message_id, "event_id": event_id, "reason": reason},
        )

    oldest_age = _oldest_age_seconds(records)
    metrics.add_metric(name="BatchSize", unit=MetricUnit.Count, value=len(records))
    metrics.add_metric(name="EventsWritten", unit=MetricUnit.Count, value=settled.written)
    metrics.add_metric(name="EventsFailed", unit=MetricUnit.Count, value=settled.failed)
    metrics.add_metric(name=EVENTS_DEAD_LETTERED, unit=MetricUnit.Count, value=settled.dead_lettered)
    if oldest_age is not None:
        metrics.add_metric(name="OldestEventAgeSeconds", unit=MetricUnit.Seconds, value=oldest_age)
    logger.info(
        "batch done",
        extra={
            "batch_size": len(records),
            "events": settled.events,
            "written": settled.written,
            "already_stored": settled.already_stored,
            "failed": settled.failed,
            "records_retried": len(settled.failed_message_ids),
            "rejected": len(settled.rejected),
            "dead_lettered": settled.dead_lettered,
            "trace_requests": result.trace_requests,
            "metric_requests": result.metric_requests,
            "oldest_event_age_s": oldest_age,
        },
    )
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in settled.failed_message_ids]}


def _publish_usage(events: list[LLMCallEvent], result: Any) -> None:
    """Usage metrics are a by-product: whatever goes wrong there never fails a stored record."""
    try:
        publish_usage(events, result)  # per model group / team, stored calls only
    except Exception as exc:
        logger.warning("usage metrics not published", extra={"reason": type(exc).__name__})


def _dead_letter(rejected: list[Rejected]) -> set[str]:
    """Send records that can never be stored to the DLQ; the ids it now holds (none if no DLQ is configured)."""
    if not rejected:
        return set()
    for item in rejected:
        logger.warning("record can never be stored", extra={"message_id": item.message_id, "reason": item.reason})
    dead_letters = DeadLetters.from_env()
    return dead_letters.send(rejected) if dead_letters is not None else set()


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
