"""Records that can never be stored go to the dead-letter queue at once, each with the reason why.

Retrying a body that does not decode is pointless: SQS would redeliver it as if MLflow were down until its receive
count moved it to the DLQ, with nothing saying why. The consumer sends such a record to the DLQ itself (the original
body and attributes, plus `litellm_mlflow.reason` and the source message id as message attributes) and then
acknowledges it. Whatever the DLQ does not accept is handed back to SQS as a normal failure, so nothing is ever
acknowledged that is neither stored nor dead-lettered. A packed record's poison events are sent without the
others, as one message whose source id is `<message id>#<their places>` (`record_batch` builds it), so a redrive
returns only them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

DLQ_URL_ENV = "LITELLM_MLFLOW_DLQ_URL"
REASON_ATTRIBUTE = "litellm_mlflow.reason"
SOURCE_MESSAGE_ATTRIBUTE = "litellm_mlflow.source_message_id"
MAX_REASON_CHARS = 1000
# SQS: at most 10 attributes a message, 10 entries and 1 MiB a SendMessageBatch.
_MAX_ATTRIBUTES = 10
_MAX_ENTRIES = 10
_MAX_BATCH_BYTES = 900 * 1024
MAX_BODY_BYTES = _MAX_BATCH_BYTES - 2048  # one dead-lettered body, with room for its attributes
EMPTY_BODY = "(empty message body)"


@dataclass(frozen=True)
class Rejected:
    """One SQS record (Lambda event form) that can never be stored, and why (never quoting its content)."""

    record: Mapping[str, Any]
    reason: str
    events: int = 1  # the events it holds (several poison events of one packed record travel together)

    @property
    def message_id(self) -> str:
        return str(self.record.get("messageId", "?"))


class DeadLetters:
    """Sends rejected records to one DLQ; `send` answers with the message ids the DLQ holds now."""

    def __init__(self, queue_url: str, client: Any = None) -> None:
        self.queue_url = queue_url
        self._client = client

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DeadLetters | None:
        url = ((os.environ if environ is None else environ).get(DLQ_URL_ENV) or "").strip()
        return cls(url) if url else None

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=10)
            self._client = boto3.client("sqs", config=config)
        return self._client

    def send(self, rejected: Sequence[Rejected]) -> set[str]:
        """Dead-letter what we can; a record the DLQ refused (or an unreachable DLQ) is left out of the answer."""
        stored: set[str] = set()
        for chunk in _chunks(rejected):
            entries = [_entry(str(index), item) for index, item in enumerate(chunk)]
            try:
                answer = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception as exc:  # the DLQ is unreachable: SQS's own redrive still catches these records
                logger.warning("could not send %d record(s) to the DLQ: %s", len(chunk), type(exc).__name__)
                continue
            for ok in answer.get("Successful", []):
                stored.add(chunk[int(ok["Id"])].message_id)
            for failed in answer.get("Failed", []):
                logger.warning(
                    "the DLQ refused record %s: %s", chunk[int(failed["Id"])].message_id, failed.get("Code", "?")
                )
        return stored


def _chunks(rejected: Sequence[Rejected]) -> Iterator[list[Rejected]]:
    chunk: list[Rejected] = []
    size = 0
    for item in rejected:
        item_size = len(str(item.record.get("body") or "").encode("utf-8", "replace")) + 2048
        if chunk and (len(chunk) == _MAX_ENTRIES or size + item_size > _MAX_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk


def _entry(entry_id: str, item: Rejected) -> dict[str, Any]:
    attributes = dict(list(_original_attributes(item.record.get("messageAttributes")).items())[: _MAX_ATTRIBUTES - 2])
    attributes[REASON_ATTRIBUTE] = {"DataType": "String", "StringValue": item.reason[:MAX_REASON_CHARS] or "unknown"}
    attributes[SOURCE_MESSAGE_ATTRIBUTE] = {"DataType": "String", "StringValue": item.message_id}
    body = item.record.get("body")
    return {
        "Id": entry_id,
        "MessageBody": body if isinstance(body, str) and body else EMPTY_BODY,
        "MessageAttributes": attributes,
    }


def _original_attributes(attributes: Any) -> dict[str, dict[str, str]]:
    """Lambda-form string/number attributes (`stringValue`, `dataType`) back in SendMessage form."""
    if not isinstance(attributes, Mapping):
        return {}
    out = {}
    for name, attr in attributes.items():
        if not isinstance(attr, Mapping) or str(name).startswith("litellm_mlflow."):
            continue
        value = attr.get("stringValue", attr.get("StringValue"))
        data_type = attr.get("dataType", attr.get("DataType")) or "String"
        if isinstance(value, str) and value and not str(data_type).startswith("Binary"):
            out[str(name)] = {"DataType": str(data_type), "StringValue": value}
    return out
