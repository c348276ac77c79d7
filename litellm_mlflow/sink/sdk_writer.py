"""Traces -> MLflow through the tracking client, each trace confirmed, many in flight: servers before 3.13.

Does what MLflow's own V3 exporter does, but synchronously and with every error surfaced instead of logged and
dropped: spans through `log_spans` (servers 3.4+) or as the trace's span artifact (older servers), and the
TraceInfo (tags, metadata, client request id = event id) through StartTrace. 3.0/3.1 servers have only the v2
calls, which make their own trace ids, so redelivery is made safe by the batch's stored-trace look-up
(stored_traces.py, by the `event_id` tag) before anything is written; there the three calls a trace needs go as
plain JSON over the sink's transport (v2_trace_calls.py), not through MLflow's client.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mlflow.entities import TraceData, TraceState
from mlflow.exceptions import MlflowException, RestException
from mlflow.tracing.client import TracingClient
from mlflow.tracing.constant import SpanAttributeKey, SpansLocation, TraceMetadataKey, TraceTagKey
from mlflow.utils.mlflow_tags import MLFLOW_ARTIFACT_LOCATION

from litellm_mlflow.sink import v2_trace_calls
from litellm_mlflow.sink.otlp_writer import DEADLINE_REASON
from litellm_mlflow.sink.stored_traces import EVENT_ID_TAG
from litellm_mlflow.sink.trace_builder import BuiltTrace
from litellm_mlflow.sink.transport import RequestRejected, Transport, short_text


@dataclass
class SdkTraceWriter:
    """Up to `max_in_flight` traces at once: a Lambda spends nearly all of this path waiting on the network."""

    client: TracingClient
    log_spans_supported: bool
    max_in_flight: int = 16
    spans_logged: bool = False  # the spans are already stored (OTLP batch): send the TraceInfo only
    # The spans go in an OTLP batch after this StartTrace (3.10.x): the TraceInfo only, without the token usage and
    # cost that the server adds up from the spans (sent here as well, they would count twice).
    spans_follow: bool = False
    v2_api: bool = False  # 3.0/3.1: go straight to the v2 calls instead of a StartTraceV3 that answers 404 each time
    # The v2 calls (3.0/3.1, required there) and any span artifact the server's artifact proxy takes (3.0-3.5) as
    # plain requests over this transport instead of MLflow's client (v2_trace_calls.py: a quarter less of the
    # consumer's CPU per trace on 3.0.1); None: MLflow's client for the span artifact.
    transport: Transport | None = None
    requests_sent: int = 0
    # 3.0/3.1: the id the server gave each trace this writer started in its last `write` (our trace id -> theirs).
    server_ids: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def write(self, traces: Sequence[BuiltTrace], deadline: float | None = None) -> dict[str, str]:
        """Write every trace (none already stored: see stored_traces.py); {trace_id: reason} for those not stored."""
        failures: dict[str, str] = {}
        self.server_ids = {}
        outage: list[str] = []  # set once: the server is unreachable, start nothing more

        def write_one(trace: BuiltTrace) -> None:
            if outage:
                failures[trace.trace_id] = outage[0]
                return
            if deadline is not None and time.monotonic() >= deadline:
                failures[trace.trace_id] = DEADLINE_REASON
                return
            try:
                self._write_one(trace, deadline)
            except Exception as exc:
                if _is_rejection(exc):
                    failures[trace.trace_id] = f"MLflow rejected the trace: {short_text(exc)}"
                else:
                    outage.append(f"MLflow unavailable: {short_text(exc)}")
                    failures[trace.trace_id] = outage[0]

        with ThreadPoolExecutor(max_workers=max(1, self.max_in_flight)) as pool:
            list(pool.map(write_one, traces))
        return failures

    @property
    def spans_after_trace(self) -> bool:
        """Before 3.6 the spans are an artifact uploaded after StartTrace: a found trace may lack them."""
        return not self.log_spans_supported and not self.spans_logged

    def repair(self, found: Sequence[tuple[BuiltTrace, object]], deadline: float | None = None) -> dict[str, str]:
        """Finish traces an earlier delivery started (found stored) where the steps after StartTrace may be missing:
        the v2 end call (3.0/3.1) and the span artifact, both idempotent. {trace_id: reason} for those not finished."""
        failures: dict[str, str] = {}

        def finish(item: tuple[BuiltTrace, object]) -> None:
            trace, stored = item
            if deadline is not None and time.monotonic() >= deadline:
                failures[trace.trace_id] = DEADLINE_REASON
                return
            try:
                if self.v2_api and hasattr(self.client.store, "deprecated_end_trace_v2"):
                    ours = trace.trace_info()
                    self._count()
                    self.client.store.deprecated_end_trace_v2(
                        request_id=stored.trace_id,
                        timestamp_ms=ours.request_time + ours.execution_duration,
                        status=ours.status,
                        request_metadata=ours.trace_metadata,
                        tags=ours.tags,
                    )
                self._count()
                self.client._upload_trace_data(stored, TraceData(spans=[trace.span]))
            except Exception as exc:
                failures[trace.trace_id] = f"could not finish the stored trace: {short_text(exc)}"

        with ThreadPoolExecutor(max_workers=max(1, self.max_in_flight)) as pool:
            list(pool.map(finish, found))
        return failures

    def _write_one(self, trace: BuiltTrace, deadline: float | None = None) -> None:
        if self.spans_follow:
            info = trace.trace_info()
            for key in (TraceMetadataKey.TOKEN_USAGE, TraceMetadataKey.COST):
                info.trace_metadata.pop(key, None)
            info.tags[EVENT_ID_TAG] = trace.event_id
            self._count()
            self.client.start_trace(info)
            return
        if self.log_spans_supported and not self.spans_logged:
            self._count()
            self.client.log_spans(trace.experiment_id, [trace.span])
        info = trace.trace_info()
        if self.log_spans_supported or self.spans_logged:
            # The server keeps only one tag it set itself when StartTrace merges into a trace its span logging made.
            info.tags[TraceTagKey.SPANS_LOCATION] = SpansLocation.TRACKING_STORE.value
        # What the stored-trace look-up matches on 3.0/3.1 servers, which make their own trace ids.
        info.tags[EVENT_ID_TAG] = trace.event_id
        usage = trace.span.get_attribute(SpanAttributeKey.CHAT_USAGE)
        if usage and TraceMetadataKey.TOKEN_USAGE not in info.trace_metadata:
            # Newer servers derive it from the spans; the 3.0/3.1 v2 API keeps only what the client sends.
            info.trace_metadata[TraceMetadataKey.TOKEN_USAGE] = json.dumps(usage)
        if self.v2_api:
            self._write_v2(trace, info, deadline)
            return
        self._count()
        info = self.client.start_trace(info)
        if info.tags.get(TraceTagKey.SPANS_LOCATION) != SpansLocation.TRACKING_STORE.value:
            self._count()
            location = info.tags.get(MLFLOW_ARTIFACT_LOCATION)
            if self.transport is None or not v2_trace_calls.upload_spans(
                self.transport, location, v2_trace_calls.span_data(trace), deadline
            ):
                self.client._upload_trace_data(info, TraceData(spans=[trace.span]))

    def _write_v2(self, trace: BuiltTrace, info, deadline: float | None) -> None:
        """3.0/3.1 over the transport: the v2 start call with the tags and metadata, the end call with the status and
        end time only, then the span artifact (through the server's artifact proxy, else MLflow's repositories).
        (MLflow's own fallback sends the tags and metadata again with the end call, which those servers merge row by
        row: ~10 more statements a trace for values already stored. A trace whose end call failed is found by its
        `event_id` tag and finished by `repair`, which sends them all.)"""
        if self.transport is None:
            raise ValueError("the 3.0/3.1 path (v2_api) needs the sink's transport")
        self._count()
        started = v2_trace_calls.start_trace(
            self.transport, info.experiment_id, info.request_time, info.trace_metadata, info.tags, deadline
        )
        self.server_ids[trace.trace_id] = started.request_id
        self._count()
        status = "ERROR" if info.state == TraceState.ERROR else "OK"
        v2_trace_calls.end_trace(
            self.transport, started.request_id, info.request_time + info.execution_duration, status, deadline
        )
        self._count()
        data = v2_trace_calls.span_data(trace)
        if not v2_trace_calls.upload_spans(self.transport, started.artifact_location, data, deadline):
            if started.artifact_location:
                info.tags[MLFLOW_ARTIFACT_LOCATION] = started.artifact_location
            self.client._upload_trace_data(info, TraceData(spans=[trace.span]))

    def _count(self) -> None:
        with self._lock:
            self.requests_sent += 1


def _is_rejection(exc: Exception) -> bool:
    """A 4xx answer (the payload is at fault) as opposed to an unreachable or failing server."""
    if isinstance(exc, (RequestRejected, RestException, MlflowException)):
        status = exc.status if isinstance(exc, RequestRejected) else exc.get_http_status_code()
        return 400 <= status < 500 and status not in (408, 429)
    return isinstance(exc, (ValueError, TypeError))
