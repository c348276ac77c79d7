"""Traces -> `POST /v1/traces` (OTLP protobuf), many traces a request, every request's status checked.

A 200 means the server stored the whole request in one transaction (3.12+), so each trace in it is known stored.
A 4xx rejects the whole request: the chunk is split in halves and re-sent until the offending trace stands alone,
so one bad event never fails its neighbours. A 5xx, 429 or connection error fails this chunk and everything not yet
sent (SQS redelivers them). Re-posting a trace is harmless: ids are derived from the event.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Sequence
from dataclasses import dataclass

from mlflow.tracing.constant import SpanAttributeKey, TraceMetadataKey
from mlflow.tracing.utils.otlp import MLFLOW_EXPERIMENT_ID_HEADER, OTLP_TRACES_PATH, _set_otel_proto_anyvalue
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OTelProtoSpan

from litellm_mlflow.sink.trace_builder import BuiltTrace
from litellm_mlflow.sink.transport import RequestRejected, ServerUnavailable, Transport

USER_ID_ATTRIBUTE = "user.id"
SESSION_ID_ATTRIBUTE = "session.id"
DEADLINE_REASON = "not written: the invocation's time ran out before this trace was sent"
# The endpoint is missing or disabled (e.g. a gateway in front of MLflow does not route it): not the payload's fault.
ENDPOINT_MISSING_STATUSES = (404, 405, 501)
GZIP_MIN_BYTES = 64 * 1024
GZIP_LEVEL = 1  # chat JSON shrinks 5-10x already at level 1; higher levels cost the Lambda CPU for little more


class OtlpEndpointMissing(RuntimeError):
    """`/v1/traces` is not served here although the version says it should be: use the SDK path instead."""


@dataclass
class OtlpTraceWriter:
    transport: Transport
    max_traces_per_request: int = 200
    max_bytes_per_request: int = 4 * 1024 * 1024
    gzip_min_bytes: int | None = None  # gzip bodies at least this big (servers 3.7+); None: never
    requests_sent: int = 0

    def write(self, traces: Sequence[BuiltTrace], deadline: float | None = None) -> dict[str, str]:
        """Send all traces; returns {trace_id: reason} for those not known stored."""
        failures: dict[str, str] = {}
        encoded: list[tuple[BuiltTrace, bytes]] = []
        for trace in traces:
            try:
                encoded.append((trace, to_otel_proto(trace).SerializeToString()))
            except Exception as exc:  # one unrepresentable event must not take the batch down
                failures[trace.trace_id] = f"cannot encode trace as OTLP: {type(exc).__name__}: {exc}"
        chunks = list(self._chunks(encoded))
        for index, chunk in enumerate(chunks):
            if deadline is not None and time.monotonic() >= deadline:
                for pending in chunks[index:]:
                    failures.update({trace.trace_id: DEADLINE_REASON for trace, _ in pending})
                break
            try:
                failures.update(self._send(chunk, deadline))
            except ServerUnavailable as exc:
                reason = f"MLflow unavailable: {exc}"
                for pending in chunks[index:]:
                    failures.update({trace.trace_id: reason for trace, _ in pending})
                break
        return failures

    def _chunks(self, encoded: list[tuple[BuiltTrace, bytes]]):
        chunk: list[tuple[BuiltTrace, bytes]] = []
        size = 0
        for item in encoded:
            full = len(chunk) >= self.max_traces_per_request or size + len(item[1]) > self.max_bytes_per_request
            if chunk and full:
                yield chunk
                chunk, size = [], 0
            chunk.append(item)
            size += len(item[1])
        if chunk:
            yield chunk

    def _send(self, chunk: list[tuple[BuiltTrace, bytes]], deadline: float | None) -> dict[str, str]:
        """Post one chunk; on 4xx bisect so only the rejected trace(s) fail."""
        try:
            self._post(chunk, deadline)
            return {}
        except RequestRejected as exc:
            if len(chunk) == 1:
                return {chunk[0][0].trace_id: f"MLflow rejected the trace: {exc}"}
            middle = len(chunk) // 2
            return {**self._send(chunk[:middle], deadline), **self._send(chunk[middle:], deadline)}

    def _post(self, chunk: list[tuple[BuiltTrace, bytes]], deadline: float | None) -> None:
        experiment_ids = {trace.experiment_id for trace, _ in chunk}
        if len(experiment_ids) != 1:
            raise ValueError("one OTLP request carries traces of one experiment")
        request = ExportTraceServiceRequest()
        scope_spans = request.resource_spans.add().scope_spans.add()
        for _, serialized in chunk:
            scope_spans.spans.add().ParseFromString(serialized)
        body = request.SerializeToString()
        headers = {"Content-Type": "application/x-protobuf", MLFLOW_EXPERIMENT_ID_HEADER: experiment_ids.pop()}
        if self.gzip_min_bytes is not None and len(body) >= self.gzip_min_bytes:
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
            headers["Content-Encoding"] = "gzip"
        self.requests_sent += 1
        response = self.transport.request("POST", OTLP_TRACES_PATH, data=body, headers=headers, deadline=deadline)
        if response.status_code in ENDPOINT_MISSING_STATUSES:
            raise OtlpEndpointMissing(f"POST {OTLP_TRACES_PATH} answered HTTP {response.status_code}")
        if response.status_code != 200:
            raise RequestRejected(f"HTTP {response.status_code}: {response.text[:300]}", response.status_code)


def to_otel_proto(trace: BuiltTrace) -> OTelProtoSpan:
    """MLflow's own span -> OTLP conversion, plus the trace tags and user/session the server restores from it."""
    proto = trace.span.to_otel_proto()
    extra = {f"{SpanAttributeKey.TRACE_TAG_PREFIX}{key}": value for key, value in trace.tags.items()}
    if user := trace.metadata.get(TraceMetadataKey.TRACE_USER):
        extra[USER_ID_ATTRIBUTE] = user
    if session := trace.metadata.get(TraceMetadataKey.TRACE_SESSION):
        extra[SESSION_ID_ATTRIBUTE] = session
    for key, value in extra.items():
        attribute = proto.attributes.add()
        attribute.key = key
        _set_otel_proto_anyvalue(attribute.value, value)
    return proto
