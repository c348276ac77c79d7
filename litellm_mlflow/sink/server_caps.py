"""Which trace write path the MLflow server supports, found once per cold start.

- 3.13 and newer: OTLP `POST /v1/traces` with many traces a request, trace tags carried as `mlflow.traceTag.<key>`
  root-span attributes and user/session as `user.id` / `session.id` (all stored in one transaction). Fast path.
- 3.6-3.12 (MLflow Apps report 3.10): spans in OTLP batches of many traces (these servers drop the tags) and one
  StartTrace per trace, many in flight, for the tags and metadata. On 3.10.x the StartTraces go first: the server's
  work per trace is about half (~26 vs ~45 ms of server CPU here), see otlp_spans_writer.py.
- anything older (SageMaker tracking servers run 3.0), or a server that does not say its version: the SDK path, one
  confirmed StartTrace (+ spans as an artifact) per trace, many in flight. Correct everywhere.
Bodies of 64 KB or more go gzipped to 3.7+ servers.

`GET /version` is what MLflow's own RestStore asks before it uses OTLP, so it is answered wherever MLflow is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from packaging.version import InvalidVersion, Version

from litellm_mlflow.sink.transport import Transport

# First release whose /v1/traces handler restores `mlflow.traceTag.*` (checked in the 3.12.0 and 3.13.0 wheels).
OTLP_FULL_MIN_VERSION = Version("3.13")
# First release whose StartTrace marks spans logged through the span endpoint as stored in the tracking store (read
# in the 3.5 and 3.6 wheels). 3.4/3.5 have the endpoint but still read a trace's spans from its artifact, so there the
# artifact is the one span write; older servers keep spans only as the artifact.
LOG_SPANS_MIN_VERSION = Version("3.6")
# First release with StartTraceV3 (client-chosen trace ids).
V3_TRACES_MIN_VERSION = Version("3.2")


# First release whose /v1/traces takes many traces a request (but drops their tags until 3.13).
OTLP_BATCH_MIN_VERSION = Version("3.6")
# Releases (read in the 3.10.0 and 3.10.1 wheels) where StartTrace is best sent before the spans: their StartTrace
# does not set the spans-location tag (only span logging does: the mark that the spans are stored) and their span
# logging adds the token usage and cost the spans carry to the trace's metadata. 3.6-3.9 set the tag in StartTrace
# and do not derive cost; 3.11/3.12 changed both calls again.
START_TRACE_FIRST_VERSIONS = (Version("3.10"), Version("3.11"))
# First release whose span logging recomputes a trace's token usage and cost from all its stored spans (read in the
# 3.15.0 wheel); 3.10-3.14 add a post's totals to what is stored, so the same spans posted twice count twice (unless,
# from 3.13, a StartTrace has marked the totals final).
SPAN_TOTALS_RECOMPUTED_MIN_VERSION = Version("3.15")
# First release whose /v1/traces accepts `Content-Encoding: gzip`.
OTLP_GZIP_MIN_VERSION = Version("3.7")


class TraceWriteMode(StrEnum):
    OTLP = "otlp"
    OTLP_SPANS = "otlp-spans"  # spans in OTLP batches, then StartTrace per trace for tags and metadata (3.6-3.12)
    SDK = "sdk"


@dataclass(frozen=True)
class ServerCapabilities:
    version: Version | None
    mode: TraceWriteMode

    @property
    def server_makes_trace_ids(self) -> bool:
        """3.0/3.1 answer StartTraceV3 with 404; the client's v2 fallback gets ids made by the server."""
        return self.version is None or self.version < V3_TRACES_MIN_VERSION

    @property
    def accepts_gzip(self) -> bool:
        return self.version is not None and self.version >= OTLP_GZIP_MIN_VERSION

    @property
    def supports_log_spans(self) -> bool:
        return self.version is not None and self.version >= LOG_SPANS_MIN_VERSION

    @property
    def start_trace_first(self) -> bool:
        """Send each trace's StartTrace before its spans on the otlp-spans path (see START_TRACE_FIRST_VERSIONS)."""
        low, high = START_TRACE_FIRST_VERSIONS
        return self.mode is TraceWriteMode.OTLP_SPANS and self.version is not None and low <= self.version < high

    @property
    def span_posts_add_totals(self) -> bool:
        """Where the same spans posted by two consumers at once count twice in the trace's totals: 3.10.x (StartTrace,
        then the spans) and the OTLP path before 3.15 (the spans only). Elsewhere a StartTrace after the spans rewrites
        the totals (3.6-3.9, 3.11, 3.12) or the server recomputes them (3.15+), and before 3.6 no spans are posted."""
        if self.version is None:
            return False
        return self.start_trace_first or (
            self.mode is TraceWriteMode.OTLP and self.version < SPAN_TOTALS_RECOMPUTED_MIN_VERSION
        )

    def describe(self) -> str:
        return f"MLflow server {self.version or 'of unknown version'}: {self.mode.value} trace path"


def capabilities_for(version: Version | None, forced: TraceWriteMode | None = None) -> ServerCapabilities:
    if forced is not None:
        return ServerCapabilities(version, forced)
    if version is not None and version >= OTLP_FULL_MIN_VERSION:
        return ServerCapabilities(version, TraceWriteMode.OTLP)
    if version is not None and version >= OTLP_BATCH_MIN_VERSION:
        return ServerCapabilities(version, TraceWriteMode.OTLP_SPANS)
    return ServerCapabilities(version, TraceWriteMode.SDK)


def detect(
    transport: Transport, forced: TraceWriteMode | None = None, deadline: float | None = None
) -> ServerCapabilities:
    """Ask the server its version (raises ServerUnavailable if it cannot be reached)."""
    response = transport.request("GET", "/version", deadline=deadline)
    version = None
    if response.status_code == 200:
        try:
            version = Version(response.text.strip())
        except InvalidVersion:
            version = None
    return capabilities_for(version, forced)
