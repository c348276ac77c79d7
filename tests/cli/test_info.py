"""`litellm-mlflow info`: stack outputs from moto's CloudFormation on 127.0.0.1, the MLflow describe call answered
by Stubber, a plain MLflow URL checked with GET /health on a local server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest

from litellm_mlflow.cli.commands.common import ExitCode
from litellm_mlflow.cli.main import main
from tests.cli.test_login import create_stack

APP_ARN = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-app/app-ABCDEF123456"
SERVER_ARN = "arn:aws:sagemaker:us-west-2:123456789012:mlflow-tracking-server/litellm-mlflow"
OUTPUTS = {
    "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/LitellmMlflow-Queue",
    "DeadLetterQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/LitellmMlflow-DLQ",
    "FunctionUrl": "https://abcdefghij.lambda-url.us-east-1.on.aws/",
    "MlflowArn": APP_ARN,
    "MlflowKind": "app",
    "ArtifactBucket": "litellmmlflow-artifacts-123456789012",
    "PublisherPolicyArn": "arn:aws:iam::123456789012:policy/LitellmMlflow-Publisher",
    "DashboardUrl": "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/x",
    "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:LitellmMlflow-AlarmsTopic",
}


@pytest.fixture
def cloudformation(sqs_server, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", sqs_server.url)
    return boto3.client("cloudformation", endpoint_url=sqs_server.url, region_name="us-east-1")


def test_info_prints_outputs_status_and_version(cloudformation, sagemaker, capsys) -> None:
    stack = create_stack(cloudformation, OUTPUTS)
    sagemaker.add_response(
        "describe_mlflow_app",
        {"Arn": APP_ARN, "Name": "litellm-mlflow", "Status": "Created", "MlflowVersion": "3.4.0"},
        {"Arn": APP_ARN},
    )

    code = main(["info", "--stack", stack])

    out, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    lines = {
        line.split(None, 1)[0] if not line.startswith("  ") else line.split()[0]: line for line in out.splitlines()
    }
    assert APP_ARN in lines["MLflow"]
    assert "Created (ready)" in lines["status"] and "3.4.0" in lines["version"] and "app" in lines["kind"]
    for value in (
        OUTPUTS["QueueUrl"],
        OUTPUTS["DeadLetterQueueUrl"],
        OUTPUTS["FunctionUrl"],
        OUTPUTS["ArtifactBucket"],
    ):
        assert value in out
    assert f"{stack} (us-east-1, CREATE_COMPLETE)" in out
    assert f"litellm-mlflow login --stack {stack}" in lines["Open"]
    assert OUTPUTS["DashboardUrl"] in lines["Dashboard"] and OUTPUTS["AlarmTopicArn"] in lines["Alarm"]


def test_info_json_for_a_tracking_server_in_its_own_region(cloudformation, sagemaker, capsys) -> None:
    stack = create_stack(cloudformation, {**OUTPUTS, "MlflowArn": SERVER_ARN, "MlflowKind": "tracking-server"})
    sagemaker.add_response(
        "describe_mlflow_tracking_server",
        {
            "TrackingServerArn": SERVER_ARN,
            "TrackingServerName": "litellm-mlflow",
            "TrackingServerStatus": "Stopped",
            "MlflowVersion": "2.16.2",
            "ArtifactStoreUri": "s3://litellmmlflow-artifacts-123456789012/mlflow",
        },
        {"TrackingServerName": "litellm-mlflow"},
    )

    code = main(["info", "--stack", stack, "--json"])

    info = json.loads(capsys.readouterr().out)
    assert code == ExitCode.OK
    assert info["mlflow"] == SERVER_ARN
    assert (info["kind"], info["status"], info["version"]) == ("tracking-server", "Stopped (not ready)", "2.16.2")
    assert info["queue_url"] == OUTPUTS["QueueUrl"]
    assert info["function_url"] == OUTPUTS["FunctionUrl"]
    assert sagemaker.regions == ["us-west-2"]


def test_info_without_describe_permission_prints_what_it_can_and_says_why(cloudformation, sagemaker, capsys) -> None:
    stack = create_stack(cloudformation, OUTPUTS)
    sagemaker.add_client_error("describe_mlflow_app", "AccessDeniedException", "not authorized", 400)

    code = main(["info", "--stack", stack])

    out, err = capsys.readouterr()
    assert code == ExitCode.ACCESS_DENIED
    assert OUTPUTS["QueueUrl"] in out and "unknown" in out
    assert "sagemaker:DescribeMlflowApp" in err


def test_info_missing_stack(cloudformation, capsys) -> None:
    assert main(["info", "--stack", "NoSuchStackForInfo"]) == ExitCode.STACK_NOT_FOUND
    assert "no CloudFormation stack named 'NoSuchStackForInfo'" in capsys.readouterr().err


@pytest.fixture
def healthy_mlflow() -> Iterator[str]:
    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_info_for_a_local_mlflow_url(healthy_mlflow: str, capsys) -> None:
    code = main(["info", "--tracking-uri", healthy_mlflow, "--json"])

    info = json.loads(capsys.readouterr().out)
    assert code == ExitCode.OK
    assert info == {"mlflow": healthy_mlflow, "kind": "url", "status": "reachable (GET /health: 200)"}


def test_info_for_an_unreachable_local_mlflow_url(capsys) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    server.server_close()

    assert main(["info", "--tracking-uri", url]) == ExitCode.OK
    assert "unreachable" in capsys.readouterr().out
