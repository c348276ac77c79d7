"""Lambda's SQS event source mapping, on one machine: what lets the real consumer handler run against a local queue.

Same semantics as AWS: long-poll up to `batch_size` messages within a batching window, invoke
`handler(event, context)` with an SQS event, delete only the records the partial-batch response does not name as
failed (all of them stay if the handler raises), and leave the rest to come back after the visibility timeout; the
queue's own redrive policy moves a record to the DLQ after its maximum receives.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
CONSUMER_HANDLER = REPO_ROOT / "functions" / "consumer" / "handler.py"

Handler = Callable[[dict, Any], Any]


class LocalLambdaContext:
    """The parts of Lambda's context object a handler reads, with a real countdown for the remaining time."""

    def __init__(self, function_name: str = "litellm-mlflow-consumer", timeout_s: float = 60.0) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{function_name}"
        self.memory_limit_in_mb = 1024
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_handler(path: Path = CONSUMER_HANDLER, name: str = "handler") -> Handler:
    """Import a Lambda entry file by path, as the Lambda runtime does (it is not part of the installed package)."""
    if not path.exists():
        raise FileNotFoundError(f"Lambda handler file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"lambda_{path.parent.name}_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def to_lambda_record(message: dict, queue_arn: str, region: str) -> dict:
    """One ReceiveMessage entry in the shape Lambda gives the handler (attribute keys in camelCase)."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: {
                "stringValue": attr.get("StringValue"),
                "binaryValue": attr.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": attr.get("DataType", "String"),
            }
            for name, attr in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


@dataclass
class InvocationOutcome:
    received: int = 0
    succeeded: int = 0
    failed: int = 0
    crashed: bool = False


@dataclass
class EmulatorTotals:
    invocations: int = 0
    received: int = 0
    succeeded: int = 0
    failed: int = 0
    crashes: int = 0
    errors: list[str] = field(default_factory=list)


class SqsEventSourceEmulator:
    """Polls one queue and invokes one handler the way an SQS event source mapping with
    ReportBatchItemFailures does. `run_in_thread()` for the local stack, `poll_once()` for tests."""

    def __init__(
        self,
        sqs_client: Any,
        queue_url: str,
        handler: Handler,
        batch_size: int = 100,
        batching_window_s: float = 0.5,
        function_timeout_s: float = 60.0,
        wait_time_s: int = 1,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.sqs = sqs_client
        self.queue_url = queue_url
        self.handler = handler
        self.batch_size = batch_size
        self.batching_window_s = batching_window_s
        self.function_timeout_s = function_timeout_s
        self.wait_time_s = wait_time_s
        self.max_backoff_s = max_backoff_s
        self._consecutive_total_failures = 0
        self.region = sqs_client.meta.region_name
        self.queue_arn = sqs_client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.totals = EmulatorTotals()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def receive_batch(self) -> list[dict]:
        """Gather up to `batch_size` messages: stop at a full batch, an empty long poll, or the window's end."""
        messages: list[dict] = []
        window_end = time.monotonic() + self.batching_window_s
        while len(messages) < self.batch_size and not self._stop.is_set():
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                WaitTimeSeconds=0 if messages else self.wait_time_s,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            batch = response.get("Messages", [])
            messages.extend(batch)
            if not batch or time.monotonic() >= window_end:
                break
        return messages

    def invoke(self, messages: list[dict]) -> InvocationOutcome:
        """Invoke the handler on these messages and delete the ones it did not report as failed."""
        outcome = InvocationOutcome(received=len(messages))
        if not messages:
            return outcome
        event = {"Records": [to_lambda_record(m, self.queue_arn, self.region) for m in messages]}
        context = LocalLambdaContext(timeout_s=self.function_timeout_s)
        try:
            response = self.handler(event, context)
            failed_ids = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
        except Exception as exc:  # Lambda semantics: an invocation error fails the whole batch.
            logger.exception("consumer invocation failed; all %d records will be retried", len(messages))
            outcome.crashed = True
            failed_ids = {m["MessageId"] for m in messages}
            self.totals.errors.append(f"{type(exc).__name__}: {exc}")
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        outcome.succeeded = len(done)
        outcome.failed = len(messages) - len(done)
        with self._lock:
            self.totals.invocations += 1
            self.totals.received += outcome.received
            self.totals.succeeded += outcome.succeeded
            self.totals.failed += outcome.failed
            self.totals.crashes += int(outcome.crashed)
        return outcome

    def poll_once(self) -> InvocationOutcome:
        return self.invoke(self.receive_batch())

    def run_in_thread(self) -> SqsEventSourceEmulator:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sqs-event-source", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def backoff_after(self, outcome: InvocationOutcome) -> float:
        """Seconds to wait before the next poll: doubling while whole batches fail, none otherwise."""
        if outcome.received and outcome.succeeded == 0:
            self._consecutive_total_failures += 1
            return min(2.0**self._consecutive_total_failures, self.max_backoff_s)
        self._consecutive_total_failures = 0
        return 0.0

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                pause = self.backoff_after(self.poll_once())
            except Exception as exc:  # The queue endpoint being down must not end the poller.
                logger.warning("polling the queue failed (%s); retrying", exc)
                self.totals.errors.append(f"poll: {type(exc).__name__}: {exc}")
                pause = 1.0
            if pause:
                self._stop.wait(pause)
