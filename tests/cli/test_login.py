"""`litellm-mlflow login` end to end on 127.0.0.1: the CLI signs a GET with SigV4, a local endpoint recomputes the
signature with botocore (as AWS would) and hands the request to the real presign Lambda handler, whose SageMaker
client is answered by Stubber. The function URL also comes from stack outputs on moto's CloudFormation."""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType

import boto3
import pytest
from botocore.stub import Stubber

from litellm_mlflow.cli.commands.common import ExitCode
from litellm_mlflow.cli.main import main
from tests.presign.test_presign_handler import (
    APP_ARN,
    APP_URL,
    SECRET,
    SERVER_ARN,
    FakeLambdaContext,
    function_url_event,
    load_presign_handler,
)
from tests.support.sigv4_server import SigV4CheckingServer

APP_DEFAULTS = {"Arn": APP_ARN, "ExpiresInSeconds": 300, "SessionExpirationDurationInSeconds": 43_200}


@dataclass
class Browser:
    opened: list[str] = field(default_factory=list)
    works: bool = True

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        self.opened.append(url)
        return self.works


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Browser:
    fake = Browser()
    monkeypatch.setattr("webbrowser.open", fake.open)
    return fake


@dataclass
class PresignEndpoint:
    """The presign Lambda behind a SigV4-checking function URL on 127.0.0.1."""

    server: SigV4CheckingServer
    module: ModuleType
    stub: Stubber

    @property
    def url(self) -> str:
        return self.server.url + "/"


def lambda_responder(module: ModuleType):
    """Turns an HTTP request into a function-URL event for the real handler and its answer back into HTTP."""

    def respond(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        parts = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(parts.query)) or None
        answer = module.handler(function_url_event(parts.path, method, query), FakeLambdaContext())
        return answer["statusCode"], dict(answer.get("headers", {})), answer.get("body", "").encode()

    return respond


def make_endpoint(monkeypatch: pytest.MonkeyPatch, tracking_uri: str) -> Iterator[PresignEndpoint]:
    module = load_presign_handler(monkeypatch, tracking_uri)
    stub = Stubber(module.sagemaker)
    stub.activate()
    server = SigV4CheckingServer(service="lambda", responder=lambda_responder(module)).start()
    try:
        yield PresignEndpoint(server, module, stub)
    finally:
        server.stop()
        stub.deactivate()


@pytest.fixture
def app_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[PresignEndpoint]:
    yield from make_endpoint(monkeypatch, APP_ARN)


@pytest.fixture
def server_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[PresignEndpoint]:
    yield from make_endpoint(monkeypatch, SERVER_ARN)


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Nothing in the default credential chain: no env keys, no files, no container or instance role."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


# --- success --------------------------------------------------------------------------------------------------------


def test_login_prints_a_link_fetched_with_a_valid_signature(app_endpoint, browser, capsys) -> None:
    app_endpoint.stub.add_response("create_presigned_mlflow_app_url", {"AuthorizedUrl": APP_URL}, APP_DEFAULTS)

    code = main(["login", "--function-url", app_endpoint.url, "--print"])

    out, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    assert out.strip() == APP_URL
    assert "valid for 300 s" in err and "12 h" in err
    assert browser.opened == []
    [request] = app_endpoint.server.seen
    assert (request.accepted, request.path, request.service) == (True, "/url", "lambda")
    app_endpoint.stub.assert_no_pending_responses()


def test_login_opens_the_browser_without_printing_the_link(app_endpoint, browser, capsys) -> None:
    app_endpoint.stub.add_response("create_presigned_mlflow_app_url", {"AuthorizedUrl": APP_URL}, APP_DEFAULTS)

    code = main(["login", "--function-url", app_endpoint.url])

    out, err = capsys.readouterr()
    assert code == ExitCode.OK
    assert browser.opened == [APP_URL]
    assert SECRET not in out + err
    assert "Opened the MLflow UI" in err


def test_login_prints_the_link_when_no_browser_opens(app_endpoint, browser, capsys) -> None:
    browser.works = False
    app_endpoint.stub.add_response("create_presigned_mlflow_app_url", {"AuthorizedUrl": APP_URL}, APP_DEFAULTS)

    code = main(["login", "--function-url", app_endpoint.url])

    out, err = capsys.readouterr()
    assert code == ExitCode.OK
    assert out.strip() == APP_URL
    assert "Could not open a browser" in err


def test_login_passes_the_durations_as_signed_query_parameters(server_endpoint, browser, capsys) -> None:
    server_endpoint.stub.add_response(
        "create_presigned_mlflow_tracking_server_url",
        {"AuthorizedUrl": APP_URL},
        {"TrackingServerName": "litellm-mlflow", "ExpiresInSeconds": 60, "SessionExpirationDurationInSeconds": 3600},
    )

    code = main(["login", "--function-url", server_endpoint.url, "--print", "--expires", "60", "--session", "3600"])

    _, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    [request] = server_endpoint.server.accepted
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query) == {
        "expires": ["60"],
        "session": ["3600"],
    }
    assert "valid for 60 s" in err and "1 h" in err


# --- refusals -------------------------------------------------------------------------------------------------------


def test_wrong_secret_key_is_caught_by_the_server_and_explained(app_endpoint, browser, capsys, monkeypatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-right-secret")

    code = main(["login", "--function-url", app_endpoint.url, "--print"])

    out, err = capsys.readouterr()
    assert code == ExitCode.ACCESS_DENIED
    assert [r.reason for r in app_endpoint.server.seen] == ["signature does not match"]
    assert "lambda:InvokeFunctionUrl" in err and "lambda:InvokeFunction " in err
    assert "Traceback" not in err
    assert out == "" and browser.opened == []


def test_unsigned_request_is_rejected_and_explained(app_endpoint, browser, capsys) -> None:
    code = main(["login", "--function-url", app_endpoint.url, "--no-sign"])

    _, err = capsys.readouterr()
    assert code == ExitCode.ACCESS_DENIED
    assert [r.reason for r in app_endpoint.server.seen] == ["no Authorization header"]
    assert "unsigned" in err and "lambda:InvokeFunction" in err


def test_without_credentials_a_local_http_endpoint_is_asked_unsigned(
    app_endpoint, browser, capsys, no_aws_credentials
) -> None:
    code = main(["login", "--function-url", app_endpoint.url, "--print"])

    _, err = capsys.readouterr()
    assert code == ExitCode.ACCESS_DENIED  # this endpoint insists on SigV4, like a real function URL
    assert [r.reason for r in app_endpoint.server.seen] == ["no Authorization header"]
    assert "refused an unsigned request" in err


def test_without_credentials_an_aws_function_url_fails_before_any_request(browser, capsys, no_aws_credentials) -> None:
    code = main(["login", "--function-url", "https://abcdefghij.lambda-url.us-east-1.on.aws/", "--print"])

    _, err = capsys.readouterr()
    assert code == ExitCode.NO_CREDENTIALS
    assert "no AWS credentials found" in err and "aws sso login" in err


def test_stopped_tracking_server_says_so_with_its_status(server_endpoint, browser, capsys) -> None:
    server_endpoint.stub.add_client_error(
        "create_presigned_mlflow_tracking_server_url", "ValidationException", "server is not running", 400
    )
    server_endpoint.stub.add_response(
        "describe_mlflow_tracking_server",
        {"TrackingServerArn": SERVER_ARN, "TrackingServerStatus": "Stopped"},
        {"TrackingServerName": "litellm-mlflow"},
    )

    code = main(["login", "--function-url", server_endpoint.url])

    _, err = capsys.readouterr()
    assert code == ExitCode.MLFLOW_NOT_READY
    assert "status Stopped" in err and "start-mlflow-tracking-server" in err
    assert browser.opened == []


def test_missing_mlflow_is_its_own_exit_code(app_endpoint, browser, capsys) -> None:
    app_endpoint.stub.add_client_error("create_presigned_mlflow_app_url", "ResourceNotFound", "no such app", 400)

    code = main(["login", "--function-url", app_endpoint.url])

    _, err = capsys.readouterr()
    assert code == ExitCode.MLFLOW_NOT_FOUND
    assert "was not found" in err


def test_wrong_path_on_the_endpoint_is_a_clear_error(app_endpoint, browser, capsys) -> None:
    code = main(["login", "--function-url", app_endpoint.url + "nested/", "--print"])

    _, err = capsys.readouterr()
    assert code == ExitCode.ERROR
    assert "no presign endpoint at" in err


def test_unreachable_endpoint(browser, capsys) -> None:
    server = SigV4CheckingServer(service="lambda", responder=lambda *a: (200, {}, b"")).start()
    url = server.url
    server.stop()

    code = main(["login", "--function-url", url, "--print", "--timeout", "5"])

    _, err = capsys.readouterr()
    assert code == ExitCode.UNREACHABLE
    assert "could not reach" in err


# --- the function URL from the deployed stack's outputs (moto CloudFormation) --------------------------------------


@pytest.fixture
def cloudformation(sqs_server, monkeypatch: pytest.MonkeyPatch):
    """moto's CloudFormation on 127.0.0.1 (the same moto server as SQS); the CLI reaches it by endpoint env var."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", sqs_server.url)
    return boto3.client("cloudformation", endpoint_url=sqs_server.url, region_name="us-east-1")


def create_stack(cloudformation, outputs: dict[str, str], name: str | None = None) -> str:
    name = name or f"LitellmMlflowTest{uuid.uuid4().hex[:8]}"
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))
    return name


def test_login_finds_the_function_url_in_the_stack_outputs(app_endpoint, cloudformation, browser, capsys) -> None:
    stack = create_stack(cloudformation, {"FunctionUrl": app_endpoint.url, "MlflowArn": APP_ARN})
    app_endpoint.stub.add_response("create_presigned_mlflow_app_url", {"AuthorizedUrl": APP_URL}, APP_DEFAULTS)

    code = main(["login", "--stack", stack])

    _, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    assert browser.opened == [APP_URL]
    assert len(app_endpoint.server.accepted) == 1


def test_login_uses_the_default_stack_name(app_endpoint, cloudformation, browser, capsys) -> None:
    stack = create_stack(cloudformation, {"FunctionUrl": app_endpoint.url}, name="LitellmMlflow")
    app_endpoint.stub.add_response("create_presigned_mlflow_app_url", {"AuthorizedUrl": APP_URL}, APP_DEFAULTS)
    try:
        code = main(["login", "--print"])
    finally:
        cloudformation.delete_stack(StackName=stack)

    out, err = capsys.readouterr()
    assert code == ExitCode.OK, err
    assert out.strip() == APP_URL


def test_missing_stack_is_its_own_exit_code(cloudformation, browser, capsys) -> None:
    code = main(["login", "--stack", "NoSuchStack-" + uuid.uuid4().hex[:6]])

    _, err = capsys.readouterr()
    assert code == ExitCode.STACK_NOT_FOUND
    assert "no CloudFormation stack named" in err and "us-east-1" in err


def test_stack_without_a_function_url_output_names_it(cloudformation, browser, capsys) -> None:
    stack = create_stack(cloudformation, {"QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/q"})

    code = main(["login", "--stack", stack])

    _, err = capsys.readouterr()
    assert code == ExitCode.STACK_NOT_FOUND
    assert "no output 'FunctionUrl'" in err and "QueueUrl" in err
