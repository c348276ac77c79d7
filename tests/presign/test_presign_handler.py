"""The presign Lambda, invoked with realistic function-URL events; SageMaker answered by botocore's Stubber."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.stub import Stubber

from litellm_mlflow.local.event_source import LocalLambdaContext
from litellm_mlflow.presign.service import ConfigurationError

HANDLER_PATH = Path(__file__).resolve().parents[2] / "functions" / "presign" / "handler.py"
APP_ARN = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-app/app-ABCDEF123456"
SERVER_ARN = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/litellm-mlflow"
SECRET = "SECRETeyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2Vu.sig"
APP_URL = f"https://app-abcdef123456.mlflow.sagemaker.us-east-1.app.aws/auth?token={SECRET}"
SERVER_URL = f"https://t-xyz.us-east-1.experiments.sagemaker.aws/auth?authToken={SECRET}"
CALLER = "arn:aws:iam::123456789012:user/alice"


def FakeLambdaContext() -> LocalLambdaContext:
    return LocalLambdaContext(function_name="LitellmMlflow-Presign", timeout_s=10)


def function_url_event(path: str = "/", method: str = "GET", query: dict[str, str] | None = None) -> dict[str, Any]:
    """A Lambda function URL (payload 2.0) event as AWS sends it for an AWS_IAM-authorised request."""
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": urllib.parse.urlencode(query or {}),
        "headers": {
            "host": "abcdefghij.lambda-url.us-east-1.on.aws",
            "user-agent": "litellm-mlflow/0.1.0",
            "x-amzn-trace-id": "Root=1-00000000-000000000000000000000000",
            "x-forwarded-proto": "https",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdefghij",
            "authorizer": {
                "iam": {
                    "accessKey": "AKIAIOSFODNN7EXAMPLE",
                    "accountId": "123456789012",
                    "callerId": "AIDAEXAMPLE",
                    "cognitoIdentity": None,
                    "principalOrgId": None,
                    "userArn": CALLER,
                    "userId": "AIDAEXAMPLE",
                }
            },
            "domainName": "abcdefghij.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefghij",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "litellm-mlflow/0.1.0",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = dict(query)
    return event


def load_presign_handler(monkeypatch: pytest.MonkeyPatch, tracking_uri: str, **env: str) -> ModuleType:
    """A cold start: import functions/presign/handler.py afresh with this environment."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "litellm-mlflow-presign")
    monkeypatch.delenv("LITELLM_MLFLOW_URL_EXPIRES_SECONDS", raising=False)
    monkeypatch.delenv("LITELLM_MLFLOW_SESSION_SECONDS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    name = f"presign_handler_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, HANDLER_PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def invoke(module: ModuleType, path: str = "/", method: str = "GET", query: dict[str, str] | None = None) -> dict:
    return module.handler(function_url_event(path, method, query), FakeLambdaContext())


def body_of(response: dict) -> dict:
    return json.loads(response["body"])


@dataclass
class Loaded:
    module: ModuleType
    stub: Stubber | None
    logs: io.StringIO

    def log_lines(self) -> list[str]:
        return [line for line in self.logs.getvalue().splitlines() if line.strip()]


@pytest.fixture
def presign(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Factory: load the handler for a tracking URI, stub SageMaker, capture the Powertools log stream.

    Every load in one test shares the service name, hence one Powertools handler: its stream is this test's buffer.
    """
    stubs: list[Stubber] = []
    logs = io.StringIO()

    def load(tracking_uri: str, log_level: str = "INFO", **env: str) -> Loaded:
        module = load_presign_handler(monkeypatch, tracking_uri, **env)
        module.logger.registered_handler.setStream(logs)
        module.logger.setLevel(log_level)
        stub = None
        if module.sagemaker is not None:
            stub = Stubber(module.sagemaker)
            stub.activate()
            stubs.append(stub)
        return Loaded(module, stub, logs)

    yield load
    for stub in stubs:
        stub.deactivate()


APP_DEFAULTS = {"Arn": APP_ARN, "ExpiresInSeconds": 300, "SessionExpirationDurationInSeconds": 43_200}
SERVER_DEFAULTS = {
    "TrackingServerName": "litellm-mlflow",
    "ExpiresInSeconds": 300,
    "SessionExpirationDurationInSeconds": 43_200,
}


def assert_no_store(response: dict) -> None:
    assert response["headers"]["Cache-Control"] == "no-store"
    assert response["headers"]["Referrer-Policy"] == "no-referrer"


# --- success paths --------------------------------------------------------------------------------------------------


def test_app_arn_url_returns_json_with_defaults(presign) -> None:
    loaded = presign(APP_ARN)
    loaded.stub.add_response("create_presigned_mlflow_app_url", {"AuthorizedUrl": APP_URL}, APP_DEFAULTS)

    response = invoke(loaded.module, "/url")

    assert response["statusCode"] == 200
    assert body_of(response) == {
        "url": APP_URL,
        "expires_in_seconds": 300,
        "session_expiration_seconds": 43_200,
        "kind": "app",
    }
    assert_no_store(response)
    loaded.stub.assert_no_pending_responses()


def test_tracking_server_arn_root_redirects_with_server_name(presign) -> None:
    loaded = presign(SERVER_ARN)
    loaded.stub.add_response(
        "create_presigned_mlflow_tracking_server_url", {"AuthorizedUrl": SERVER_URL}, SERVER_DEFAULTS
    )

    response = invoke(loaded.module, "/")

    assert response["statusCode"] == 302
    assert response["headers"]["Location"] == SERVER_URL
    assert_no_store(response)
    loaded.stub.assert_no_pending_responses()


def test_tracking_server_url_json_reports_its_kind(presign) -> None:
    loaded = presign(SERVER_ARN)
    loaded.stub.add_response(
        "create_presigned_mlflow_tracking_server_url", {"AuthorizedUrl": SERVER_URL}, SERVER_DEFAULTS
    )

    assert body_of(invoke(loaded.module, "/url"))["kind"] == "tracking-server"


def test_plain_url_is_handed_out_as_is_without_sagemaker(presign) -> None:
    loaded = presign("http://127.0.0.1:5000")
    assert loaded.module.sagemaker is None

    as_json = invoke(loaded.module, "/url")
    redirect = invoke(loaded.module, "/")

    assert body_of(as_json) == {
        "url": "http://127.0.0.1:5000",
        "expires_in_seconds": None,
        "session_expiration_seconds": None,
        "kind": "url",
    }
    assert redirect["statusCode"] == 302
    assert redirect["headers"]["Location"] == "http://127.0.0.1:5000"


def test_environment_sets_the_defaults(presign) -> None:
    loaded = presign(APP_ARN, LITELLM_MLFLOW_URL_EXPIRES_SECONDS="60", LITELLM_MLFLOW_SESSION_SECONDS="3600")
    loaded.stub.add_response(
        "create_presigned_mlflow_app_url",
        {"AuthorizedUrl": APP_URL},
        {"Arn": APP_ARN, "ExpiresInSeconds": 60, "SessionExpirationDurationInSeconds": 3600},
    )

    body = body_of(invoke(loaded.module, "/url"))

    assert (body["expires_in_seconds"], body["session_expiration_seconds"]) == (60, 3600)


# --- parameter ranges -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expires", "session"),
    [
        ({"expires": "5"}, 5, 43_200),
        ({"expires": "300"}, 300, 43_200),
        ({"session": "1800"}, 300, 1_800),
        ({"session": "43200"}, 300, 43_200),
        ({"expires": "5", "session": "1800"}, 5, 1_800),
    ],
)
def test_edges_of_the_ranges_are_accepted(presign, query: dict, expires: int, session: int) -> None:
    loaded = presign(APP_ARN)
    loaded.stub.add_response(
        "create_presigned_mlflow_app_url",
        {"AuthorizedUrl": APP_URL},
        {"Arn": APP_ARN, "ExpiresInSeconds": expires, "SessionExpirationDurationInSeconds": session},
    )

    response = invoke(loaded.module, "/url", query=query)

    assert response["statusCode"] == 200
    assert body_of(response)["expires_in_seconds"] == expires
    loaded.stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("query", "parameter", "range_text"),
    [
        ({"expires": "4"}, "expires", "from 5 to 300"),
        ({"expires": "301"}, "expires", "from 5 to 300"),
        ({"expires": "abc"}, "expires", "from 5 to 300"),
        ({"expires": "1.5"}, "expires", "from 5 to 300"),
        ({"session": "1799"}, "session", "from 1800 to 43200"),
        ({"session": "43201"}, "session", "from 1800 to 43200"),
        ({"session": "abc"}, "session", "from 1800 to 43200"),
    ],
)
@pytest.mark.parametrize("path", ["/", "/url"])
def test_out_of_range_or_non_numeric_is_400_naming_the_parameter(
    presign, path: str, query: dict, parameter: str, range_text: str
) -> None:
    loaded = presign(APP_ARN)  # no stubbed response: a SageMaker call would fail the test

    response = invoke(loaded.module, path, query=query)

    assert response["statusCode"] == 400
    body = body_of(response)
    assert body["error"] == "invalid_parameter"
    assert body["parameter"] == parameter
    assert parameter in body["message"] and range_text in body["message"]
    loaded.stub.assert_no_pending_responses()


# --- routing --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/url/extra", "/favicon.ico"])
def test_unknown_paths_are_404(presign, path: str) -> None:
    loaded = presign(APP_ARN)

    response = invoke(loaded.module, path)

    assert response["statusCode"] == 404
    assert body_of(response)["error"] == "not_found"


@pytest.mark.parametrize(("path", "method"), [("/", "POST"), ("/url", "DELETE"), ("/url", "PUT"), ("/", "PATCH")])
def test_other_methods_are_405_with_allow(presign, path: str, method: str) -> None:
    loaded = presign(APP_ARN)

    response = invoke(loaded.module, path, method)

    assert response["statusCode"] == 405
    assert response["headers"]["Allow"] == "GET"
    assert body_of(response)["error"] == "method_not_allowed"


# --- SageMaker errors -----------------------------------------------------------------------------------------------


def test_not_found_is_404(presign) -> None:
    loaded = presign(APP_ARN)
    loaded.stub.add_client_error(
        "create_presigned_mlflow_app_url", "ResourceNotFound", f"MLflow App {APP_ARN} not found", 400
    )

    response = invoke(loaded.module, "/url")

    assert response["statusCode"] == 404
    assert body_of(response)["error"] == "mlflow_not_found"
    assert_no_store(response)


def test_access_denied_is_403_naming_the_action(presign) -> None:
    loaded = presign(SERVER_ARN)
    loaded.stub.add_client_error(
        "create_presigned_mlflow_tracking_server_url", "AccessDeniedException", "not authorized", 400
    )

    response = invoke(loaded.module, "/")

    assert response["statusCode"] == 403
    body = body_of(response)
    assert body["error"] == "sagemaker_access_denied"
    assert "sagemaker:CreatePresignedMlflowTrackingServerUrl" in body["message"]


def test_throttled_is_429_with_retry_after(presign) -> None:
    loaded = presign(APP_ARN)
    loaded.stub.add_client_error("create_presigned_mlflow_app_url", "ThrottlingException", "Rate exceeded", 400)

    response = invoke(loaded.module, "/url")

    assert response["statusCode"] == 429
    assert int(response["headers"]["Retry-After"]) > 0
    assert body_of(response)["retry_after_seconds"] == int(response["headers"]["Retry-After"])


def test_stopped_tracking_server_is_503_with_its_status_and_how_to_start_it(presign) -> None:
    loaded = presign(SERVER_ARN)
    loaded.stub.add_client_error(
        "create_presigned_mlflow_tracking_server_url",
        "ValidationException",
        "Tracking server is not in a valid state to create a presigned URL",
        400,
    )
    loaded.stub.add_response(
        "describe_mlflow_tracking_server",
        {"TrackingServerArn": SERVER_ARN, "TrackingServerName": "litellm-mlflow", "TrackingServerStatus": "Stopped"},
        {"TrackingServerName": "litellm-mlflow"},
    )

    response = invoke(loaded.module, "/url")

    assert response["statusCode"] == 503
    body = body_of(response)
    assert (body["error"], body["status"]) == ("mlflow_not_ready", "Stopped")
    assert "start-mlflow-tracking-server --tracking-server-name litellm-mlflow" in body["message"]
    loaded.stub.assert_no_pending_responses()


def test_not_ready_status_is_read_from_the_message_when_describe_is_denied(presign) -> None:
    loaded = presign(SERVER_ARN)
    loaded.stub.add_client_error(
        "create_presigned_mlflow_tracking_server_url",
        "ValidationException",
        f"Tracking Server with ARN {SERVER_ARN} is currently in status UPDATING",
        400,
    )
    loaded.stub.add_client_error("describe_mlflow_tracking_server", "AccessDeniedException", "not authorized", 400)

    response = invoke(loaded.module, "/")

    assert response["statusCode"] == 503
    assert body_of(response)["status"] == "Updating"


def test_app_still_creating_is_503(presign) -> None:
    loaded = presign(APP_ARN)
    loaded.stub.add_client_error("create_presigned_mlflow_app_url", "ConflictException", "App is not ready", 400)
    loaded.stub.add_response(
        "describe_mlflow_app", {"Arn": APP_ARN, "Name": "litellm", "Status": "Creating"}, {"Arn": APP_ARN}
    )

    response = invoke(loaded.module, "/url")

    assert response["statusCode"] == 503
    assert body_of(response)["status"] == "Creating"


def test_validation_error_on_a_ready_resource_is_502_not_503(presign) -> None:
    loaded = presign(APP_ARN)
    loaded.stub.add_client_error("create_presigned_mlflow_app_url", "ValidationException", "something else", 400)
    loaded.stub.add_response(
        "describe_mlflow_app", {"Arn": APP_ARN, "Name": "litellm", "Status": "Created"}, {"Arn": APP_ARN}
    )

    response = invoke(loaded.module, "/url")

    assert response["statusCode"] == 502
    body = body_of(response)
    assert body["error"] == "sagemaker_error"
    assert "ValidationException: something else" in body["message"]


def test_internal_failure_is_clear_json_not_a_stack_trace(presign) -> None:
    loaded = presign(APP_ARN)
    loaded.stub.add_client_error("create_presigned_mlflow_app_url", "InternalFailure", "boom", 500)

    response = invoke(loaded.module, "/url")

    assert response["statusCode"] == 502
    assert "Traceback" not in response["body"]
    assert body_of(response)["error"] == "sagemaker_error"


# --- cold start -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    ["", "databricks", "file:///tmp/mlruns", "arn:aws:s3:::bucket", "arn:aws:sagemaker:us-east-1:123456789012:model/x"],
)
def test_unusable_tracking_uri_fails_at_cold_start(monkeypatch: pytest.MonkeyPatch, uri: str) -> None:
    with pytest.raises(ConfigurationError, match="MLFLOW_TRACKING_URI"):
        load_presign_handler(monkeypatch, uri)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("LITELLM_MLFLOW_URL_EXPIRES_SECONDS", "600"), ("LITELLM_MLFLOW_SESSION_SECONDS", "ten")],
)
def test_out_of_range_environment_fails_at_cold_start(monkeypatch: pytest.MonkeyPatch, variable: str, value: str):
    with pytest.raises(ConfigurationError, match=variable):
        load_presign_handler(monkeypatch, APP_ARN, **{variable: value})


# --- the URL is a credential: never in the logs ---------------------------------------------------------------------


@pytest.mark.parametrize("log_level", ["INFO", "DEBUG"])
def test_no_log_line_holds_the_token(presign, caplog: pytest.LogCaptureFixture, log_level: str) -> None:
    caplog.set_level(logging.DEBUG)
    app = presign(APP_ARN, log_level=log_level)
    server = presign(SERVER_ARN, log_level=log_level)
    app.stub.add_response("create_presigned_mlflow_app_url", {"AuthorizedUrl": APP_URL}, APP_DEFAULTS)
    app.stub.add_response("create_presigned_mlflow_app_url", {"AuthorizedUrl": APP_URL}, APP_DEFAULTS)
    server.stub.add_response(
        "create_presigned_mlflow_tracking_server_url", {"AuthorizedUrl": SERVER_URL}, SERVER_DEFAULTS
    )

    responses = [invoke(app.module, "/url"), invoke(app.module, "/"), invoke(server.module, "/url")]

    assert SECRET in responses[0]["body"] and SECRET in responses[1]["headers"]["Location"]
    lines = app.log_lines() + [record.getMessage() for record in caplog.records]
    issued = [json.loads(line) for line in app.log_lines() if "issued" in line]
    assert len(issued) == 3
    assert {entry["url"] for entry in issued} == {
        "https://app-abcdef123456.mlflow.sagemaker.us-east-1.app.aws/auth?token=<redacted>",
        "https://t-xyz.us-east-1.experiments.sagemaker.aws/auth?authToken=<redacted>",
    }
    assert all(entry["caller"] == CALLER for entry in issued)
    assert not [line for line in lines if SECRET in line or "SECRET" in line]
