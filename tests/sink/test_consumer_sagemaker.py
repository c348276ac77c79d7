"""The consumer against SageMaker MLflow ARNs, without AWS: every request goes through the sagemaker-mlflow plugin,
is SigV4-signed, and reaches a local proxy that checks the signature and the ARN header before forwarding it to the
local MLflow server."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient

from tests.support.litellm_events import FakeLambdaContext, load_consumer_handler, make_calls, sqs_event, sqs_record
from tests.support.sigv4_server import SigV4CheckingServer

TRACKING_SERVER_ARN = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/test"
APP_ARN = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-app/app-abcdef123456"


@pytest.fixture(autouse=True)
def per_call_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test counts the per-call metric points, opt-in since the usage rollup replaced them."""
    monkeypatch.setenv("LITELLM_MLFLOW_CALL_METRICS", "true")


@pytest.mark.parametrize(
    ("arn", "service", "arn_header"),
    [
        (TRACKING_SERVER_ARN, "sagemaker-mlflow", "x-mlflow-sm-tracking-server-arn"),
        (APP_ARN, "sagemaker", "x-sm-mlflow-app-arn"),
    ],
    ids=["tracking-server", "mlflow-app"],
)
def test_events_land_through_a_signed_sagemaker_endpoint(
    arn, service, arn_header, mlflow_server, experiment_name, litellm_capture, monkeypatch
):
    calls = make_calls(litellm_capture)
    proxy = SigV4CheckingServer(service=service, upstream=mlflow_server.url, required_headers={arn_header: arn})
    proxy.start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", arn)
    monkeypatch.setenv("SAGEMAKER_MLFLOW_CUSTOM_ENDPOINT", proxy.url)
    try:
        handler = load_consumer_handler()
        records = [sqs_record(payload) for payload in calls.values()]
        response = handler(sqs_event(records), FakeLambdaContext())
    finally:
        proxy.stop()
        mlflow.set_tracking_uri(None)

    assert response == {"batchItemFailures": []}
    assert proxy.rejected == [], [(r.method, r.path, r.reason) for r in proxy.rejected]
    paths = {request.path.split("?")[0] for request in proxy.accepted}
    assert "/v1/traces" in paths
    assert "/api/2.0/mlflow/runs/log-batch" in paths
    assert all(request.service == service for request in proxy.accepted)

    client = MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name(experiment_name)
    traces = client.search_traces(locations=[experiment.experiment_id], include_spans=True)
    call_ids = {trace.data.spans[0].attributes["litellm.call_id"] for trace in traces}
    assert call_ids == {p["litellm_call_id"] for p in calls.values()}
    (run,) = client.search_runs([experiment.experiment_id])
    assert len(client.get_metric_history(run.info.run_id, "latency_ms")) == len(calls)
