"""The 3.0/3.1 per-trace calls sent as plain JSON over the transport (sink/v2_trace_calls.py), request by request.

A recording transport answers like a 3.0.1 server (its StartTrace answer carries the server's request id and the
artifact location tag); the real servers are in test_consumer_handler.py (every version in the matrix).
"""

from __future__ import annotations

import json
import time

from mlflow.entities import TraceData

from litellm_mlflow.events import event_from_payload
from litellm_mlflow.sink.otlp_writer import DEADLINE_REASON
from litellm_mlflow.sink.sdk_writer import SdkTraceWriter
from litellm_mlflow.sink.trace_builder import build_trace
from litellm_mlflow.sink.transport import ServerUnavailable


class Response:
    def __init__(self, status_code: int, body: dict | None = None) -> None:
        self.status_code = status_code
        self.content = json.dumps(body or {}).encode()
        self.text = self.content.decode()

    def json(self):
        return json.loads(self.content)


class V2Server:
    """Answers the v2 calls; `artifact_root` is what the experiment's artifact location starts with."""

    def __init__(self, artifact_root: str = "mlflow-artifacts:/7", start_status: int = 200, down: bool = False):
        self.artifact_root, self.start_status, self.down = artifact_root, start_status, down
        self.calls: list[tuple[str, str, bytes, int | None]] = []
        self.deadlines: list[float | None] = []
        self.start_answers: list[int] = []  # HTTP statuses to answer the next starts with, before `start_status`

    def request(self, method, endpoint, *, data=None, headers=None, deadline=None, retries=None):
        if self.down:
            raise ServerUnavailable("connection refused")
        self.calls.append((method, endpoint, data, retries))
        self.deadlines.append(deadline)
        if method == "POST" and self.start_answers:
            status = self.start_answers.pop(0)
            raise ServerUnavailable(f"POST {endpoint}: HTTP {status}", status)  # what Transport raises for 5xx/429
        if method == "POST":
            request_id = f"tr-{len(self.calls):032x}"
            location = f"{self.artifact_root}/traces/{request_id}/artifacts"
            info = {"request_id": request_id, "tags": [{"key": "mlflow.artifactLocation", "value": location}]}
            return Response(self.start_status, {"trace_info": info} if self.start_status == 200 else {"message": "no"})
        return Response(200, {})


class ArtifactClient:
    """Stands in for MLflow's TracingClient where only the artifact fallback may be used."""

    def __init__(self) -> None:
        self.uploads: list = []

    def _upload_trace_data(self, info, data):
        self.uploads.append((info, data))


def _traces(count: int, status: str = "success"):
    return [
        build_trace(
            event_from_payload(
                {
                    "id": f"e{i}",
                    "model": "gpt-4o-mini",
                    "status": status,
                    "startTime": 100.0,
                    "endTime": 100.25,
                    "prompt_tokens": 3,
                    "completion_tokens": 4,
                    "total_tokens": 7,
                    "response_cost": 0.5,
                    "metadata": {"user_api_key_team_id": "t1"},
                }
            ),
            "7",
        )
        for i in range(count)
    ]


def _writer(server: V2Server, client=None) -> SdkTraceWriter:
    return SdkTraceWriter(client or ArtifactClient(), False, 2, v2_api=True, transport=server)


def test_a_trace_is_start_end_and_span_artifact_with_what_mlflows_client_sends():
    server = V2Server()
    trace = _traces(1)[0]
    writer = _writer(server)
    assert writer.write([trace]) == {}
    assert writer.requests_sent == 3
    (m1, start_ep, start_body, start_retries), (m2, end_ep, end_body, _), (m3, put_ep, put_body, _) = server.calls
    assert (m1, start_ep, start_retries) == ("POST", "/api/2.0/mlflow/traces", 0)  # never retried: it makes a trace
    start = json.loads(start_body)
    assert start["experiment_id"] == "7" and start["timestamp_ms"] == 100_000
    tags = {tag["key"]: tag["value"] for tag in start["tags"]}
    assert tags["event_id"] == "e0" and tags["team_id"] == "t1" and tags["mlflow.traceName"] == "gpt-4o-mini"
    metadata = {item["key"]: item["value"] for item in start["request_metadata"]}
    assert json.loads(metadata["mlflow.trace.tokenUsage"])["total_tokens"] == 7
    assert json.loads(metadata["mlflow.trace.cost"])["total_cost"] == 0.5
    request_id = "tr-" + f"{1:032x}"
    assert (m2, end_ep) == ("PATCH", f"/api/2.0/mlflow/traces/{request_id}")
    assert json.loads(end_body) == {"request_id": request_id, "timestamp_ms": 100_250, "status": "OK"}
    assert (m3, put_ep) == ("PUT", f"/api/2.0/mlflow-artifacts/artifacts/7/traces/{request_id}/artifacts/traces.json")
    stored = TraceData.from_dict(json.loads(put_body))
    assert stored.spans[0].to_dict() == TraceData(spans=[trace.span]).spans[0].to_dict()


def test_a_failed_call_ends_with_status_error():
    server = V2Server()
    assert _writer(server).write(_traces(1, status="failure")) == {}
    assert json.loads(server.calls[1][2])["status"] == "ERROR"


def test_spans_for_a_store_the_server_does_not_proxy_go_through_mlflows_artifact_repositories():
    server, client = V2Server(artifact_root="s3://bucket/7"), ArtifactClient()
    trace = _traces(1)[0]
    assert _writer(server, client).write([trace]) == {}
    assert [method for method, *_ in server.calls] == ["POST", "PATCH"]
    ((info, data),) = client.uploads
    assert info.tags["mlflow.artifactLocation"].startswith("s3://bucket/7/traces/tr-")
    assert data.spans[0].span_id == trace.span.span_id


def test_a_rejected_start_fails_that_trace_and_an_unreachable_server_stops_the_batch():
    writer = _writer(V2Server(start_status=400))
    failures = writer.write(_traces(2))
    assert set(failures) == {trace.trace_id for trace in _traces(2)}
    assert all(reason.startswith("MLflow rejected the trace") for reason in failures.values())

    down = V2Server(down=True)
    failures = _writer(down).write(_traces(3))
    assert len(failures) == 3 and all(reason.startswith("MLflow unavailable") for reason in failures.values())


def test_nothing_is_started_past_the_deadline():
    server = V2Server()
    failures = _writer(server).write(_traces(2), deadline=time.monotonic() - 1)
    assert set(failures.values()) == {DEADLINE_REASON} and server.calls == []


def test_every_call_is_bounded_by_the_batch_deadline():
    server = V2Server()
    deadline = time.monotonic() + 60
    assert _writer(server).write(_traces(2), deadline=deadline) == {}
    assert len(server.deadlines) == 6 and set(server.deadlines) == {deadline}


def test_a_start_is_sent_again_only_after_an_answer_that_says_it_was_not_stored(monkeypatch):
    from litellm_mlflow.sink import v2_trace_calls

    monkeypatch.setattr(v2_trace_calls, "START_RETRY_DELAYS_S", (0.0, 0.0))
    server = V2Server()
    server.start_answers = [503, 429]  # throttled / unavailable: nothing stored, so it goes again
    assert _writer(server).write(_traces(1)) == {}
    assert [method for method, *_ in server.calls] == ["POST"] * 3 + ["PATCH", "PUT"]

    server = V2Server()
    server.start_answers = [500]  # the server failed while handling it: it may be stored, so the redelivery decides
    failures = _writer(server).write(_traces(1))
    assert [method for method, *_ in server.calls] == ["POST"]
    assert next(iter(failures.values())).startswith("MLflow unavailable")

    server = V2Server()
    server.start_answers = [503, 503, 503]  # still refused after the retries: back to SQS
    assert len(_writer(server).write(_traces(1))) == 1 and len(server.calls) == 3
