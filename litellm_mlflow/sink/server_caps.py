"""Which trace write path the MLflow server supports, found once per cold start.

- 3.13 and newer: OTLP `POST /v1/traces` with many traces a request, trace tags carried as `mlflow.traceTag.<key>`
  root-span attributes and user/session as `user.id` / `session.id` (all stored in one transaction). Fast path.
- anything older (SageMaker tracking servers run 3.0; 3.6-3.12 batch OTLP spans but drop the tags), or a server that
  does not say its version: the SDK path, one confirmed StartTrace (+ spans) per trace. Correct everywhere.

`GET /version` is what MLflow's own RestStore asks before it uses OTLP, so it is answered wherever MLflow is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from packaging.version import InvalidVersion, Version

from litellm_mlflow.sink.transport import Transport

# First release whose /v1/traces handler restores `mlflow.traceTag.*` (checked in the 3.12.0 and 3.13.0 wheels).
OTLP_FULL_MIN_VERSION = Version("3.13")
# First release with a span-logging endpoint; older servers keep spans as an artifact next to the trace.
LOG_SPANS_MIN_VERSION = Version("3.4")


class TraceWriteMode(StrEnum):
    OTLP = "otlp"
    SDK = "sdk"


@dataclass(frozen=True)
class ServerCapabilities:
    version: Version | None
    mode: TraceWriteMode

    @property
    def supports_log_spans(self) -> bool:
        return self.version is not None and self.version >= LOG_SPANS_MIN_VERSION

    def describe(self) -> str:
        return f"MLflow server {self.version or 'of unknown version'}: {self.mode.value} trace path"


def capabilities_for(version: Version | None, forced: TraceWriteMode | None = None) -> ServerCapabilities:
    if forced is not None:
        return ServerCapabilities(version, forced)
    if version is not None and version >= OTLP_FULL_MIN_VERSION:
        return ServerCapabilities(version, TraceWriteMode.OTLP)
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
