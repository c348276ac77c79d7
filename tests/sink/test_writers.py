"""Trace path choice, configuration errors, and the OTLP writer's chunking / isolation / deadline behaviour.

The OTLP writer is driven through a recording transport that answers like the MLflow server does (200, or 422 for a
request containing a rejected trace, or a connection failure), so the splitting logic is checked request by request.
"""

from __future__ import annotations

import gzip
import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from packaging.version import Version

from litellm_mlflow.events import event_from_payload
from litellm_mlflow.sink.otlp_writer import DEADLINE_REASON, OtlpEndpointMissing, OtlpTraceWriter
from litellm_mlflow.sink.server_caps import TraceWriteMode, capabilities_for
from litellm_mlflow.sink.trace_builder import build_trace
from litellm_mlflow.sink.transport import ServerUnavailable
from litellm_mlflow.sink.writer import SinkConfigError, SinkSettings


@pytest.mark.parametrize(
    ("version", "mode"),
    [
        ("3.0.0", "sdk"),
        ("3.4.1", "sdk"),
        ("3.5.1", "sdk"),
        ("3.6.0", "otlp-spans"),
        ("3.10.1", "otlp-spans"),
        ("3.12.0", "otlp-spans"),
        ("3.13.0", "otlp"),
        ("3.17.2", "otlp"),
        (None, "sdk"),
    ],
)
def test_trace_path_by_server_version(version, mode):
    caps = capabilities_for(Version(version) if version else None)
    assert caps.mode.value == mode
    assert capabilities_for(Version("3.17.2"), TraceWriteMode.SDK).mode is TraceWriteMode.SDK


def test_settings_from_env():
    settings = SinkSettings.from_env({"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})
    assert settings.experiment_name == "litellm-monitoring" and settings.trace_mode is None
    arn = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-app/app-abcdef123456"
    assert SinkSettings.from_env({"MLFLOW_TRACKING_URI": arn, "LITELLM_MLFLOW_TRACE_WRITER": "SDK"}).trace_mode == "sdk"
    with pytest.raises(SinkConfigError, match="MLFLOW_TRACKING_URI is not set"):
        SinkSettings.from_env({})
    with pytest.raises(SinkConfigError, match="not usable"):
        SinkSettings.from_env({"MLFLOW_TRACKING_URI": "file:///tmp/mlruns"})
    with pytest.raises(SinkConfigError, match="LITELLM_MLFLOW_TRACE_WRITER"):
        SinkSettings.from_env({"MLFLOW_TRACKING_URI": "http://x", "LITELLM_MLFLOW_TRACE_WRITER": "fast"})


class Response:
    def __init__(self, status_code: int, text: str = "") -> None:
        self.status_code, self.text = status_code, text


class RecordingTransport:
    """Answers 422 to any request that contains a trace id in `rejected`, else 200; or fails after `down_after`."""

    def __init__(self, rejected: set[bytes] = frozenset(), down_after: int | None = None) -> None:
        self.rejected = rejected
        self.down_after = down_after
        self.batches: list[int] = []
        self.encodings: list[str | None] = []

    def request(self, method, endpoint, *, data=None, headers=None, deadline=None, retries=None):
        assert (method, endpoint) == ("POST", "/v1/traces")
        assert headers["x-mlflow-experiment-id"] == "7"
        if self.down_after is not None and len(self.batches) >= self.down_after:
            raise ServerUnavailable("connection refused")
        if headers.get("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        self.encodings.append(headers.get("Content-Encoding"))
        request = ExportTraceServiceRequest.FromString(data)
        spans = request.resource_spans[0].scope_spans[0].spans
        self.batches.append(len(spans))
        if any(span.trace_id in self.rejected for span in spans):
            return Response(422, "Cannot convert OpenTelemetry span to MLflow span")
        return Response(200)


def traces(count: int):
    return [
        build_trace(event_from_payload({"id": f"e{i}", "model": "m", "startTime": 1.0, "endTime": 2.0}), "7")
        for i in range(count)
    ]


def test_many_traces_per_request():
    transport = RecordingTransport()
    writer = OtlpTraceWriter(transport, max_traces_per_request=40)
    assert writer.write(traces(100)) == {}
    assert transport.batches == [40, 40, 20]
    assert writer.requests_sent == 3


def test_a_rejected_trace_fails_alone():
    batch = traces(16)
    bad = batch[5]
    transport = RecordingTransport(rejected={bad.otel_trace_id.to_bytes(16, "big")})
    failures = OtlpTraceWriter(transport).write(batch)
    assert list(failures) == [bad.trace_id]
    assert "rejected" in failures[bad.trace_id]
    assert transport.batches[0] == 16 and transport.batches.count(1) >= 1
    assert len(transport.batches) <= 1 + 2 * 4  # bisection: a few requests, not one per trace


def test_server_down_fails_everything_not_yet_sent():
    batch = traces(10)
    failures = OtlpTraceWriter(RecordingTransport(down_after=1), max_traces_per_request=4).write(batch)
    assert set(failures) == {trace.trace_id for trace in batch[4:]}
    assert all(reason.startswith("MLflow unavailable") for reason in failures.values())


def test_past_deadline_sends_nothing():
    transport = RecordingTransport()
    batch = traces(3)
    failures = OtlpTraceWriter(transport).write(batch, deadline=time.monotonic() - 1)
    assert failures == {trace.trace_id: DEADLINE_REASON for trace in batch}
    assert transport.batches == []


def test_missing_otlp_endpoint_is_reported_not_blamed_on_the_traces():
    class NotRouted(RecordingTransport):
        def request(self, method, endpoint, **kwargs):
            return Response(404, "Not Found")

    with pytest.raises(OtlpEndpointMissing):
        OtlpTraceWriter(NotRouted()).write(traces(3))


def test_big_bodies_are_gzipped_where_the_server_accepts_it():
    transport = RecordingTransport()
    writer = OtlpTraceWriter(transport, max_traces_per_request=10, gzip_min_bytes=2_000)
    assert writer.write(traces(12)) == {}
    assert transport.batches == [10, 2] and transport.encodings == ["gzip", None]
    plain = RecordingTransport()
    assert OtlpTraceWriter(plain, max_traces_per_request=10).write(traces(12)) == {}
    assert plain.encodings == [None, None]
    assert capabilities_for(Version("3.7.0")).accepts_gzip and not capabilities_for(Version("3.6.0")).accepts_gzip


@pytest.mark.parametrize(
    ("version", "first"), [("3.6.0", False), ("3.9.0", False), ("3.10.0", True), ("3.10.1", True), ("3.11.0", False)]
)
def test_starttrace_goes_before_the_spans_only_on_3_10(version, first):
    assert capabilities_for(Version(version)).start_trace_first is first


class RecordingClient:
    """A TracingClient stand-in that keeps the TraceInfos it is sent, in order with the span batches."""

    def __init__(self, log: list) -> None:
        self.log = log

    def start_trace(self, info):
        self.log.append(("start", info))
        return info


def test_starttrace_first_leaves_the_span_derived_totals_to_the_server_and_falls_back_when_unsure():
    from litellm_mlflow.sink.otlp_spans_writer import OtlpSpansTraceWriter
    from litellm_mlflow.sink.sdk_writer import SdkTraceWriter
    from litellm_mlflow.sink.stored_traces import StoredTraceLookup

    log: list = []
    transport = RecordingTransport()
    original = transport.request
    transport.request = lambda *a, **k: (log.append(("spans", None)), original(*a, **k))[1]
    batch = [
        build_trace(
            event_from_payload(
                {
                    "id": f"e{i}",
                    "model": "m",
                    "startTime": 1.0,
                    "endTime": 2.0,
                    "response_cost": 0.5,
                    "prompt_tokens": 3,
                    "completion_tokens": 4,
                    "total_tokens": 7,
                }
            ),
            "7",
        )
        for i in range(3)
    ]
    lookup = StoredTraceLookup(client=None)
    writer = OtlpSpansTraceWriter(
        OtlpTraceWriter(transport, 100),
        SdkTraceWriter(RecordingClient(log), True, 2, spans_logged=True),
        SdkTraceWriter(RecordingClient(log), True, 2, spans_follow=True),
        lookup,
    )
    assert writer.write(batch) == {}
    assert [kind for kind, _ in log] == ["start"] * 3 + ["spans"]
    for _, info in log[:3]:
        assert "mlflow.trace.tokenUsage" not in info.trace_metadata and "mlflow.trace.cost" not in info.trace_metadata
        assert info.tags["event_id"] in {"e0", "e1", "e2"} and "mlflow.trace.spansLocation" not in info.tags
    assert writer.requests_sent == 4

    log.clear()
    lookup.complete = False  # a stored trace may have been missed: its spans must not be added twice
    assert writer.write(batch) == {}
    assert [kind for kind, _ in log] == ["spans"] + ["start"] * 3
    assert all("mlflow.trace.tokenUsage" in info.trace_metadata for _, info in log[1:])
