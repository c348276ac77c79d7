"""`MlflowSink`: decoded events in, per-event outcome out. The one entry point the consumer Lambda calls.

Order per batch: traces first (bulk); then, for the calls whose trace is stored, the hours the usage rollup has
already read are reopened (late_windows.py), and per-call metric points are written if switched on
(LITELLM_MLFLOW_CALL_METRICS; the rollup's summary runs replace them). A call counts as written only when all of it
is known done; everything else is returned as a failure with a reason, so the handler can hand exactly those records
back to SQS. Setup (experiment, server version) happens on first use, not on import, and is retried on the next
batch if MLflow is unreachable at cold start.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from litellm_mlflow.events import LLMCallEvent
from litellm_mlflow.mlflow_target import InvalidTrackingUri, parse_tracking_uri
from litellm_mlflow.sink.late_windows import LateWindowMarker
from litellm_mlflow.sink.otlp_spans_writer import OtlpSpansTraceWriter
from litellm_mlflow.sink.otlp_writer import GZIP_MIN_BYTES, OtlpEndpointMissing, OtlpTraceWriter
from litellm_mlflow.sink.server_caps import ServerCapabilities, TraceWriteMode, detect
from litellm_mlflow.sink.trace_builder import BuiltTrace, build_trace
from litellm_mlflow.sink.transport import ServerUnavailable, Transport, short_text

logger = logging.getLogger(__name__)

DEFAULT_EXPERIMENT_NAME = "litellm-monitoring"
# 3.6-3.12 servers store each OTLP request in several transactions: smaller batches keep a retry cheap.
OTLP_SPANS_TRACES_PER_REQUEST = 100
# MLflow's client retries for minutes by default; a Lambda has seconds, and SQS redelivers anyway.
_CLIENT_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    # No model-catalog download for pricing: LiteLLM already priced the call.
    "MLFLOW_MODEL_CATALOG_URI": "",
}


class SinkConfigError(ValueError):
    """The sink's configuration (environment) is unusable; the message names the variable."""


@dataclass
class WriteResult:
    """Outcome of one `write`: indexes into the events given, failed ones with a reason."""

    total: int
    failed: dict[int, str] = field(default_factory=dict)
    already_stored: set[int] = field(default_factory=set)  # stored by an earlier delivery (found on every path)
    permanent: set[int] = field(default_factory=set)  # failed for what they hold: retrying cannot help (to the DLQ)
    trace_requests: int = 0
    metric_requests: int = 0

    @property
    def written(self) -> int:
        return self.total - len(self.failed)


@dataclass
class SinkSettings:
    tracking_uri: str
    experiment_name: str = DEFAULT_EXPERIMENT_NAME
    trace_mode: TraceWriteMode | None = None
    safety_margin_s: float = 2.0
    max_traces_per_request: int = 200
    max_in_flight: int = 16  # requests in flight on the per-trace and metrics paths (LITELLM_MLFLOW_SINK_MAX_IN_FLIGHT)
    # Per-call metric points in one run per deployment (the layout before the usage rollup); off by default: the
    # rollup's summary runs replace them at a fraction of the server's work.
    call_metrics: bool = False

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SinkSettings:
        env = os.environ if environ is None else environ
        uri = (env.get("MLFLOW_TRACKING_URI") or "").strip()
        if not uri:
            raise SinkConfigError("MLFLOW_TRACKING_URI is not set: give an http(s) MLflow URL or a SageMaker ARN")
        try:
            parse_tracking_uri(uri)
        except InvalidTrackingUri as exc:
            raise SinkConfigError(str(exc)) from exc
        mode = (env.get("LITELLM_MLFLOW_TRACE_WRITER") or "auto").strip().lower()
        if mode not in ("auto", *TraceWriteMode):
            raise SinkConfigError(f"LITELLM_MLFLOW_TRACE_WRITER must be auto, otlp or sdk, not {mode!r}")
        in_flight = (env.get("LITELLM_MLFLOW_SINK_MAX_IN_FLIGHT") or "16").strip()
        if not in_flight.isdigit() or int(in_flight) < 1:
            raise SinkConfigError(f"LITELLM_MLFLOW_SINK_MAX_IN_FLIGHT must be a whole number >= 1, not {in_flight!r}")
        call_metrics = (env.get("LITELLM_MLFLOW_CALL_METRICS") or "false").strip().lower()
        if call_metrics not in ("true", "false"):
            raise SinkConfigError(f"LITELLM_MLFLOW_CALL_METRICS must be true or false, not {call_metrics!r}")
        return cls(
            tracking_uri=uri,
            experiment_name=(env.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT_NAME).strip(),
            trace_mode=None if mode == "auto" else TraceWriteMode(mode),
            max_in_flight=int(in_flight),
            call_metrics=call_metrics == "true",
        )


class MlflowSink:
    """Writes LLM call events to one MLflow experiment as traces (plus per-call metrics when switched on)."""

    def __init__(self, settings: SinkSettings) -> None:
        self.settings = settings
        self.experiment_id: str | None = None
        self.capabilities: ServerCapabilities | None = None
        self._trace_writer = None
        self._metrics_writer = None
        self._stored_lookup = None
        self._concurrent_check = None
        self._late_marker: LateWindowMarker | None = None
        self._transport: Transport | None = None

    @classmethod
    def from_env(cls) -> MlflowSink:
        for name, value in _CLIENT_HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        return cls(SinkSettings.from_env())

    # ------------------------------------------------------------------------------------------ setup

    def ensure_ready(self, deadline: float | None = None) -> None:
        """Resolve the experiment (created if missing), the server's trace path and the model-run cache."""
        if self._late_marker is not None:
            return
        import mlflow
        from mlflow.tracing.client import TracingClient
        from mlflow.tracking import MlflowClient

        from litellm_mlflow.sink.concurrent_writes import ConcurrentWriteCheck
        from litellm_mlflow.sink.metrics import MetricsWriter, ModelRuns, points_per_request
        from litellm_mlflow.sink.stored_traces import StoredTraceLookup

        # The sagemaker-mlflow plugin reads the ARN (for signing and routing) from the global tracking URI.
        mlflow.set_tracking_uri(self.settings.tracking_uri)
        if not parse_tracking_uri(self.settings.tracking_uri).is_sagemaker:
            # The plugin's header provider is always active and cannot parse a URL as an ARN, so MLflow would log a
            # warning on every request to a plain server. Nothing is wrong: keep the Lambda's log clean.
            logging.getLogger("mlflow.tracking.request_header.registry").setLevel(logging.ERROR)
        transport = Transport.for_tracking_uri(self.settings.tracking_uri)
        capabilities = detect(transport, self.settings.trace_mode, deadline)
        client = MlflowClient(self.settings.tracking_uri)
        experiment_id = resolve_experiment(client, self.settings.experiment_name)
        self.capabilities, self._transport = capabilities, transport
        gzip_min_bytes = GZIP_MIN_BYTES if capabilities.accepts_gzip else None
        lookup = StoredTraceLookup(
            TracingClient(self.settings.tracking_uri),
            server_makes_trace_ids=capabilities.server_makes_trace_ids,
            require_event_tag=capabilities.mode is not TraceWriteMode.OTLP and capabilities.supports_log_spans,
            require_spans_tag=capabilities.start_trace_first,
        )
        if capabilities.mode is TraceWriteMode.OTLP:
            per_request = self.settings.max_traces_per_request
            trace_writer = OtlpTraceWriter(transport, per_request, gzip_min_bytes=gzip_min_bytes)
        elif capabilities.mode is TraceWriteMode.OTLP_SPANS:
            spans = OtlpTraceWriter(transport, OTLP_SPANS_TRACES_PER_REQUEST, gzip_min_bytes=gzip_min_bytes)
            infos_first = self._sdk_writer(spans_follow=True) if capabilities.start_trace_first else None
            trace_writer = OtlpSpansTraceWriter(spans, self._sdk_writer(spans_logged=True), infos_first, lookup)
        else:
            trace_writer = self._sdk_writer()
        check = ConcurrentWriteCheck(lookup)
        if capabilities.span_posts_add_totals:
            check.totals_writer = self._sdk_writer(spans_logged=True)
        elif getattr(trace_writer, "v2_api", False):
            check.v2_writer, check.transport = trace_writer, transport
        metrics_writer = None
        if self.settings.call_metrics:
            runs = ModelRuns(client, experiment_id)
            runs.load()
            metrics_writer = MetricsWriter(
                runs,
                points_per_request=points_per_request(capabilities.version),
                max_in_flight=self.settings.max_in_flight,
            )
        self.experiment_id, self.capabilities, self._stored_lookup = experiment_id, capabilities, lookup
        self._concurrent_check = check
        self._trace_writer, self._metrics_writer = trace_writer, metrics_writer
        self._late_marker = LateWindowMarker(client, experiment_id)
        logger.info("MLflow sink ready: %s, experiment %s", capabilities.describe(), experiment_id)

    def _sdk_writer(self, spans_logged: bool = False, spans_follow: bool = False):
        from mlflow.tracing.client import TracingClient

        from litellm_mlflow.sink.sdk_writer import SdkTraceWriter

        caps = self.capabilities
        log_spans = caps is not None and caps.supports_log_spans
        v2_api = caps is not None and caps.version is not None and caps.server_makes_trace_ids
        client = TracingClient(self.settings.tracking_uri)
        return SdkTraceWriter(
            client,
            log_spans,
            self.settings.max_in_flight,
            spans_logged=spans_logged,
            spans_follow=spans_follow,
            v2_api=v2_api,
            transport=self._transport,
        )

    # ------------------------------------------------------------------------------------------ writing

    def write(self, events: Sequence[LLMCallEvent], deadline: float | None = None) -> WriteResult:
        """Write all events; `deadline` (time.monotonic()) is when to stop starting new requests."""
        result = WriteResult(total=len(events))
        if not events:
            return result
        try:
            self.ensure_ready(deadline)
        except Exception as exc:
            reason = f"MLflow not reachable or not usable at setup: {type(exc).__name__}: {short_text(exc)}"
            result.failed = dict.fromkeys(range(len(events)), reason)
            return result
        assert self.experiment_id is not None

        indexes_by_trace: dict[str, list[int]] = {}
        traces: dict[str, BuiltTrace] = {}
        for index, event in enumerate(events):
            try:
                trace = build_trace(event, self.experiment_id)
            except Exception as exc:
                result.failed[index] = f"cannot build a trace from the event: {type(exc).__name__}: {short_text(exc)}"
                result.permanent.add(index)
                continue
            traces.setdefault(trace.trace_id, trace)
            indexes_by_trace.setdefault(trace.trace_id, []).append(index)

        trace_writer, metrics_writer, lookup = self._trace_writer, self._metrics_writer, self._stored_lookup
        check = self._concurrent_check
        sent_before = trace_writer.requests_sent + lookup.requests_sent + check.requests_sent
        try:
            already_stored = lookup.stored(list(traces.values()))
        except Exception as exc:  # unreachable mid-batch: nothing is known stored, SQS redelivers all of it
            reason = f"MLflow unavailable while looking up stored traces: {type(exc).__name__}: {short_text(exc)}"
            trace_failures = dict.fromkeys(traces, reason)
            already_stored = set()
        else:
            if getattr(trace_writer, "spans_after_trace", False) and already_stored:
                found = [(traces[trace_id], lookup.found[trace_id]) for trace_id in already_stored]
                trace_failures = trace_writer.repair(found, deadline)
                already_stored -= set(trace_failures)
            else:
                trace_failures = {}
            handled = already_stored | set(trace_failures)
            to_write = [trace for trace_id, trace in traces.items() if trace_id not in handled]
            try:
                trace_failures.update(trace_writer.write(to_write, deadline))
            except OtlpEndpointMissing as exc:
                logger.warning("%s; switching this container to the SDK trace path", exc)
                self._trace_writer = self._sdk_writer()
                trace_failures.update(self._trace_writer.write(to_write, deadline))
            # Another consumer may have written the same calls at the same time: one search, repairs where wrong.
            finished = {trace_id: lookup.found[trace_id].trace_id for trace_id in already_stored}
            finished.update(getattr(trace_writer, "server_ids", {}))
            checked = [trace for trace_id, trace in traces.items() if trace_id not in trace_failures]
            trace_failures.update(check.check(checked, finished, deadline))
        sent_after = trace_writer.requests_sent + lookup.requests_sent + check.requests_sent
        result.trace_requests = sent_after - sent_before
        for trace_id in already_stored:
            result.already_stored.update(indexes_by_trace[trace_id])
        for trace_id, reason in trace_failures.items():
            for index in indexes_by_trace[trace_id]:
                result.failed[index] = reason

        stored = [events[idx[0]] for trace_id, idx in indexes_by_trace.items() if trace_id not in trace_failures]
        late_failures = self._mark_late(stored)
        if late_failures:
            stored = [event for event in stored if event.event_id not in late_failures]
            _fail(result, events, late_failures)
        if metrics_writer is None:
            return result
        stored_before = {events[index].event_id for index in result.already_stored}
        metric_before = metrics_writer.requests_sent
        try:
            metric_failures = metrics_writer.write(stored, deadline, already_stored=stored_before)
        except Exception as exc:
            reason = f"MLflow unavailable while writing metrics: {type(exc).__name__}: {short_text(exc)}"
            metric_failures = {event.event_id: reason for event in stored}
        result.metric_requests = metrics_writer.requests_sent - metric_before
        _fail(result, events, metric_failures)
        return result

    def _mark_late(self, stored: Sequence[LLMCallEvent]) -> dict[str, str]:
        """Reopen the hours of traces stored after their hour closed; a call whose mark failed goes back to SQS."""
        assert self._late_marker is not None
        try:
            self._late_marker.mark(stored)
        except Exception as exc:
            reason = f"stored, but the rollup could not be told about it: {type(exc).__name__}: {short_text(exc)}"
            return dict.fromkeys((event.event_id for event in stored), reason)
        return {}


def _fail(result: WriteResult, events: Sequence[LLMCallEvent], failures: dict[str, str]) -> None:
    for index, event in enumerate(events):
        if event.event_id in failures and index not in result.failed:
            result.failed[index] = failures[event.event_id]


def resolve_experiment(client, name: str) -> str:
    """The experiment's id, creating it if missing (a concurrent creator's experiment is used as is)."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage != "active":
            raise SinkConfigError(f"MLflow experiment {name!r} is deleted: restore it or set MLFLOW_EXPERIMENT_NAME")
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


__all__ = ["MlflowSink", "ServerUnavailable", "SinkConfigError", "SinkSettings", "WriteResult"]
