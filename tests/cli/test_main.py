"""The `litellm-mlflow` parser, the function-URL client helpers, and `login --tracking-uri` (no function URL)."""

from __future__ import annotations

import pytest
from botocore.credentials import Credentials

from litellm_mlflow.cli.commands.common import ExitCode
from litellm_mlflow.cli.function_url_client import (
    SigningIdentity,
    link_request_url,
    region_of_function_url,
    signed_headers,
)
from litellm_mlflow.cli.main import build_parser, main
from litellm_mlflow.presign.service import InvalidDuration
from tests.support.sigv4_server import verify_sigv4

APP_ARN = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-app/app-ABCDEF123456"
SERVER_ARN = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/srv"
LINK = "https://app-abcdef123456.mlflow.sagemaker.eu-west-1.app.aws/auth?token=SECRETtoken"


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    urls: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url, new=0, autoraise=True: urls.append(url) or True)
    return urls


# --- parser ---------------------------------------------------------------------------------------------------------


def test_subcommands_are_registered_with_their_defaults() -> None:
    parser = build_parser()

    login = parser.parse_args(["login"])
    info = parser.parse_args(["info", "--json"])

    assert (login.command, login.stack, login.print_only, login.no_sign) == ("login", "LitellmMlflow", False, False)
    assert (info.command, info.stack, info.json) == ("info", "LitellmMlflow", True)


def test_no_subcommand_prints_help_and_is_a_usage_error(capsys) -> None:
    assert main([]) == ExitCode.USAGE
    assert "login" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["login", "--expires", "301"], ["login", "--session", "abc"]])
def test_out_of_range_durations_are_usage_errors(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)

    assert exited.value.code == ExitCode.USAGE
    assert "from " in capsys.readouterr().err


def test_function_url_and_tracking_uri_are_exclusive(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["login", "--function-url", "http://127.0.0.1:1/", "--tracking-uri", "http://127.0.0.1:2"])

    assert exited.value.code == ExitCode.USAGE


# --- function-URL client helpers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://abcdefghij0123456789.lambda-url.ap-northeast-1.on.aws/", "ap-northeast-1"),
        ("https://abc.lambda-url.us-gov-west-1.on.aws", "us-gov-west-1"),
        ("http://127.0.0.1:8080/", None),
        ("https://example.com/", None),
    ],
)
def test_region_of_function_url(url: str, region: str | None) -> None:
    assert region_of_function_url(url) == region


def test_link_request_url_appends_url_and_durations() -> None:
    assert link_request_url("https://x.lambda-url.us-east-1.on.aws/") == "https://x.lambda-url.us-east-1.on.aws/url"
    assert link_request_url("http://127.0.0.1:9/", 60, 3600) == "http://127.0.0.1:9/url?expires=60&session=3600"
    with pytest.raises(InvalidDuration, match="expires"):
        link_request_url("http://127.0.0.1:9/", 4)


def test_signed_headers_verify_like_aws_would() -> None:
    credentials = Credentials("AKIDEXAMPLE", "secret", "session-token")
    url = "http://127.0.0.1:8080/url?session=3600&expires=60"
    headers = signed_headers(url, SigningIdentity(credentials.get_frozen_credentials(), "us-west-2"))
    received = {**headers, "Host": "127.0.0.1:8080"}

    assert (
        verify_sigv4("GET", "/url?session=3600&expires=60", received, b"", credentials, "lambda", "us-west-2") is None
    )
    tampered = "/url?session=3600&expires=61"
    assert (
        verify_sigv4("GET", tampered, received, b"", credentials, "lambda", "us-west-2") == "signature does not match"
    )


# --- login --tracking-uri: no function URL involved ------------------------------------------------------------------


def test_login_opens_a_plain_mlflow_url_as_is(opened: list[str], capsys) -> None:
    assert main(["login", "--tracking-uri", "http://127.0.0.1:5000"]) == ExitCode.OK
    assert opened == ["http://127.0.0.1:5000"]


def test_login_presigns_an_arn_directly_with_the_callers_credentials(sagemaker, opened, capsys) -> None:
    sagemaker.add_response(
        "create_presigned_mlflow_app_url",
        {"AuthorizedUrl": LINK},
        {"Arn": APP_ARN, "ExpiresInSeconds": 30, "SessionExpirationDurationInSeconds": 43_200},
    )

    code = main(["login", "--tracking-uri", APP_ARN, "--print", "--expires", "30"])

    out, _ = capsys.readouterr()
    assert code == ExitCode.OK
    assert out.strip() == LINK
    assert sagemaker.regions == ["eu-west-1"]
    assert opened == []


@pytest.mark.parametrize(
    ("error", "exit_code", "text"),
    [
        ("AccessDeniedException", ExitCode.ACCESS_DENIED, "sagemaker:CreatePresignedMlflowTrackingServerUrl"),
        ("ResourceNotFound", ExitCode.MLFLOW_NOT_FOUND, "was not found"),
        ("ThrottlingException", ExitCode.THROTTLED, "throttled"),
    ],
)
def test_login_direct_errors_have_their_exit_codes(sagemaker, opened, capsys, error, exit_code, text) -> None:
    sagemaker.add_client_error("create_presigned_mlflow_tracking_server_url", error, "from SageMaker", 400)

    code = main(["login", "--tracking-uri", SERVER_ARN])

    assert code == exit_code
    assert text in capsys.readouterr().err
    assert opened == []


def test_login_direct_on_a_stopped_server_is_not_ready(sagemaker, opened, capsys) -> None:
    sagemaker.add_client_error(
        "create_presigned_mlflow_tracking_server_url", "ValidationException", "server is in status STOPPED", 400
    )
    sagemaker.add_client_error("describe_mlflow_tracking_server", "AccessDeniedException", "no describe", 400)

    code = main(["login", "--tracking-uri", SERVER_ARN])

    assert code == ExitCode.MLFLOW_NOT_READY
    assert "status Stopped" in capsys.readouterr().err


def test_login_rejects_an_unusable_tracking_uri(capsys) -> None:
    assert main(["login", "--tracking-uri", "sqlite:///mlflow.db"]) == ExitCode.USAGE
    assert "--tracking-uri 'sqlite:///mlflow.db' is not usable" in capsys.readouterr().err


def test_login_direct_without_credentials(monkeypatch, tmp_path, opened, capsys) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    assert main(["login", "--tracking-uri", APP_ARN]) == ExitCode.NO_CREDENTIALS
    assert "no AWS credentials found" in capsys.readouterr().err
