"""Traces -> MLflow through the tracking client, one confirmed trace at a time: the path for servers before 3.13.

Does what MLflow's own V3 exporter does, but synchronously and with every error surfaced instead of logged and
dropped: spans through `log_spans` (servers 3.4+) or as the trace's span artifact (older servers), and the
TraceInfo (tags, metadata, client request id = event id) through StartTrace. On 3.0/3.1 servers the client itself
falls back to the v2 calls, which make their own trace ids, so redelivery is made safe by looking the event up by
its `event_id` tag before writing it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from mlflow.entities import TraceData
from mlflow.exceptions import MlflowException, RestException
from mlflow.tracing.client import TracingClient
from mlflow.tracing.constant import SpansLocation, TraceTagKey

from litellm_mlflow.sink.otlp_writer import DEADLINE_REASON
from litellm_mlflow.sink.trace_builder import BuiltTrace

EVENT_ID_TAG = "event_id"


@dataclass
class SdkTraceWriter:
    client: TracingClient
    log_spans_supported: bool
    already_stored: set[str] = field(default_factory=set)  # trace ids the last write found already stored

    def write(self, traces: Sequence[BuiltTrace], deadline: float | None = None) -> dict[str, str]:
        failures: dict[str, str] = {}
        self.already_stored = set()
        for index, trace in enumerate(traces):
            if deadline is not None and time.monotonic() >= deadline:
                failures.update({pending.trace_id: DEADLINE_REASON for pending in traces[index:]})
                break
            try:
                if self._already_stored(trace):
                    self.already_stored.add(trace.trace_id)
                else:
                    self._write_one(trace)
            except Exception as exc:
                if _is_rejection(exc):
                    failures[trace.trace_id] = f"MLflow rejected the trace: {_short(exc)}"
                    continue
                reason = f"MLflow unavailable: {_short(exc)}"
                failures.update({pending.trace_id: reason for pending in traces[index:]})
                break
        return failures

    def _already_stored(self, trace: BuiltTrace) -> bool:
        if "'" in trace.event_id or "\\" in trace.event_id:
            return False
        found = self.client.search_traces(
            locations=[trace.experiment_id],
            filter_string=f"tag.{EVENT_ID_TAG} = '{trace.event_id}'",
            max_results=1,
            include_spans=False,
        )
        return len(found) > 0

    def _write_one(self, trace: BuiltTrace) -> None:
        if self.log_spans_supported:
            self.client.log_spans(trace.experiment_id, [trace.span])
        info = trace.trace_info()
        # What `_already_stored` looks for, also on 3.0/3.1 servers that make their own trace ids.
        info.tags[EVENT_ID_TAG] = trace.event_id
        info = self.client.start_trace(info)
        if info.tags.get(TraceTagKey.SPANS_LOCATION) != SpansLocation.TRACKING_STORE.value:
            self.client._upload_trace_data(info, TraceData(spans=[trace.span]))


def _is_rejection(exc: Exception) -> bool:
    """A 4xx answer (the payload is at fault) as opposed to an unreachable or failing server."""
    if isinstance(exc, (RestException, MlflowException)):
        status = exc.get_http_status_code()
        return 400 <= status < 500 and status not in (408, 429)
    return isinstance(exc, (ValueError, TypeError))


def _short(value: object, limit: int = 300) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."
