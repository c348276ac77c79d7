"""The per-trace calls of the 3.0/3.1 path as plain JSON over the sink's Transport, without MLflow's tracking client.

Measured on 3.0.1 behind the bench's proxy: MLflow's client spent ~2.5-3 ms of CPU on each of these calls, ~2 ms of
it in the HTTP request itself (MLflow's `http_request`, kept here) and the rest in protobuf to JSON and back, a
TraceInfo conversion and, for the span artifact, a temporary directory and file per trace. Without that the
consumer's CPU per event fell by about a quarter (bench_versions: 10.3 -> 7.5 ms on sqlite), CPU a Lambda of 1 GB
(~0.6 vCPU) pays in time. The bodies here are what MLflow's RestStore sends (StartTrace / EndTrace of the v2 API,
and the `traces.json` its artifact repository uploads), and they go through MLflow's own `http_request`
(Transport), so SageMaker's signing applies unchanged.

The span artifact upload serves 3.4/3.5 too, where the spans are still an artifact beside a StartTraceV3. Only a
span artifact location served by the tracking server's artifact proxy (`mlflow-artifacts:/...`, no host)
is uploaded here; any other store (s3://..., another host) is left to MLflow's artifact repositories (the caller's
fallback, `upload_spans` returns False).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from urllib.parse import quote

from mlflow.entities import TraceData
from mlflow.tracing.utils import TraceJSONEncoder
from mlflow.utils.mlflow_tags import MLFLOW_ARTIFACT_LOCATION

from litellm_mlflow.sink.trace_builder import BuiltTrace
from litellm_mlflow.sink.transport import RequestRejected, ServerUnavailable, Transport

TRACES_ENDPOINT = "/api/2.0/mlflow/traces"
PROXIED_ARTIFACTS_SCHEME = "mlflow-artifacts:"
PROXIED_ARTIFACTS_ENDPOINT = "/api/2.0/mlflow-artifacts/artifacts"
TRACE_DATA_FILE_NAME = "traces.json"  # what MLflow's artifact repository names it (and reads back)
_JSON = {"Content-Type": "application/json"}
# Answers after which a StartTrace is known not stored, so sending it again cannot make a second trace.
NOT_PROCESSED_STATUSES = (429, 503)
START_RETRY_DELAYS_S = (0.5, 1.0)


@dataclass(frozen=True)
class StartedTrace:
    """What the v2 start call answers that the later calls need: the server's id and where the spans go."""

    request_id: str
    artifact_location: str | None


def start_trace(
    transport: Transport,
    experiment_id: str,
    timestamp_ms: int,
    metadata: dict[str, str],
    tags: dict[str, str],
    deadline: float | None = None,
) -> StartedTrace:
    """StartTrace (v2). The server makes a new trace for each one it stores, so it is sent again only after an answer
    that says it was not processed (429, 503: throttled or unavailable, `START_RETRY_DELAYS_S`, within the deadline).
    A start without an answer (timeout, dropped connection) or with another 5xx is not retried: if it was stored,
    the redelivery finds it by its `event_id` tag."""
    body = {
        "experiment_id": str(experiment_id),
        "timestamp_ms": int(timestamp_ms),
        "request_metadata": [{"key": key, "value": str(value)} for key, value in metadata.items()],
        "tags": [{"key": key, "value": str(value)} for key, value in tags.items()],
    }
    for delay in (*START_RETRY_DELAYS_S, None):
        try:
            answer = _json_call(transport, "POST", TRACES_ENDPOINT, body, deadline, retries=0)
            break
        except ServerUnavailable as exc:
            late = deadline is not None and time.monotonic() + (delay or 0) >= deadline
            if delay is None or exc.status not in NOT_PROCESSED_STATUSES or late:
                raise
            time.sleep(delay)
    info = answer.get("trace_info") or {}
    request_id = info.get("request_id")
    if not request_id:
        raise RequestRejected(f"StartTrace answered without a request id: {str(answer)[:200]}", 400)
    stored_tags = {tag.get("key"): tag.get("value") for tag in info.get("tags") or ()}
    return StartedTrace(request_id, stored_tags.get(MLFLOW_ARTIFACT_LOCATION))


def end_trace(
    transport: Transport, request_id: str, timestamp_ms: int, status: str, deadline: float | None = None
) -> None:
    """EndTrace (v2) with the status and end time only (idempotent: a retry sets the same values)."""
    body = {"request_id": request_id, "timestamp_ms": int(timestamp_ms), "status": status}
    _json_call(transport, "PATCH", f"{TRACES_ENDPOINT}/{quote(request_id, safe='')}", body, deadline)


def delete_traces(
    transport: Transport, experiment_id: str, request_ids: list[str], deadline: float | None = None
) -> None:
    """DeleteTraces (v2) by id: what the concurrent-delivery check uses to drop a call's duplicate traces. Deleting a
    trace that is already gone is not an error (two consumers may drop the same duplicate)."""
    body = {"experiment_id": str(experiment_id), "request_ids": list(request_ids)}
    _json_call(transport, "POST", f"{TRACES_ENDPOINT}/delete-traces", body, deadline)


def span_data(trace: BuiltTrace) -> bytes:
    """The span artifact exactly as MLflow's client writes it."""
    text = json.dumps(TraceData(spans=[trace.span]).to_dict(), cls=TraceJSONEncoder, ensure_ascii=False)
    return text.encode("utf-8")


def upload_spans(
    transport: Transport, artifact_location: str | None, data: bytes, deadline: float | None = None
) -> bool:
    """PUT the span artifact through the server's artifact proxy; False (nothing sent) for any other location."""
    if not artifact_location or not artifact_location.startswith(PROXIED_ARTIFACTS_SCHEME):
        return False
    path = artifact_location[len(PROXIED_ARTIFACTS_SCHEME) :]
    if path.startswith("//"):  # mlflow-artifacts://host/...: another server than the tracking one
        return False
    endpoint = f"{PROXIED_ARTIFACTS_ENDPOINT}/{quote(path.strip('/'))}/{TRACE_DATA_FILE_NAME}"
    response = transport.request("PUT", endpoint, data=data, headers=_JSON, deadline=deadline)
    _check(response, "PUT", endpoint)
    return True


def _json_call(
    transport: Transport, method: str, endpoint: str, body: dict, deadline: float | None, retries: int | None = None
) -> dict:
    data = json.dumps(body).encode("utf-8")
    response = transport.request(method, endpoint, data=data, headers=_JSON, deadline=deadline, retries=retries)
    _check(response, method, endpoint)
    return response.json() if response.content else {}


def _check(response, method: str, endpoint: str) -> None:
    """Transport raises for 5xx/408/429; any other answer but 200 is a rejection of this payload."""
    if response.status_code != 200:
        text = response.text if len(response.text) <= 300 else response.text[:300] + "..."
        raise RequestRejected(f"{method} {endpoint}: HTTP {response.status_code}: {text}", response.status_code)
