"""Traces -> MLflow 3.6-3.12: spans in OTLP batches, then one StartTrace per trace for its tags and metadata.

These servers take many traces in one `POST /v1/traces` but drop the `mlflow.traceTag.*` attributes that 3.13+
turns into trace tags, so the batch alone would leave traces unsearchable by model, user or status. StartTrace on a
trace the batch created merges the TraceInfo into it (the spans and what the server derived from them stay), so each
trace costs 1/100 of a batch plus one StartTrace, and the StartTraces go out many at once. A trace counts as stored
only when both its batch and its StartTrace succeeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from litellm_mlflow.sink.otlp_writer import OtlpTraceWriter
from litellm_mlflow.sink.sdk_writer import SdkTraceWriter
from litellm_mlflow.sink.trace_builder import BuiltTrace


@dataclass
class OtlpSpansTraceWriter:
    spans: OtlpTraceWriter
    infos: SdkTraceWriter  # with spans_logged=True: StartTrace only

    @property
    def requests_sent(self) -> int:
        return self.spans.requests_sent + self.infos.requests_sent

    def write(self, traces: Sequence[BuiltTrace], deadline: float | None = None) -> dict[str, str]:
        """{trace_id: reason} for traces not known stored (OtlpEndpointMissing propagates: the caller switches)."""
        failures = self.spans.write(traces, deadline)
        failures.update(self.infos.write([trace for trace in traces if trace.trace_id not in failures], deadline))
        return failures
