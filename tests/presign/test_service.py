"""The presign library without the Lambda: tracking-URI parsing, durations, redaction, describe."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from litellm_mlflow.mlflow_target import InvalidTrackingUri, TargetKind, parse_tracking_uri
from litellm_mlflow.presign.service import (
    EXPIRES,
    SESSION,
    ConfigurationError,
    InvalidDuration,
    MlflowApiError,
    PresignSettings,
    describe_mlflow,
    presign_url,
    redact_url,
)

APP_ARN = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-app/app-ABCDEF123456"
SERVER_ARN = "arn:aws-cn:sagemaker:cn-north-1:123456789012:mlflow-tracking-server/my-server-2"


def test_parses_an_app_arn() -> None:
    target = parse_tracking_uri(f"  {APP_ARN} ")

    assert (target.kind, target.name, target.region, target.account) == (
        TargetKind.APP,
        "app-ABCDEF123456",
        "eu-west-1",
        "123456789012",
    )
    assert target.uri == APP_ARN
    assert target.is_sagemaker


def test_parses_a_tracking_server_arn_in_another_partition() -> None:
    target = parse_tracking_uri(SERVER_ARN)

    assert (target.kind, target.name, target.region, target.partition) == (
        TargetKind.TRACKING_SERVER,
        "my-server-2",
        "cn-north-1",
        "aws-cn",
    )


@pytest.mark.parametrize("uri", ["http://127.0.0.1:5000", "https://mlflow.example.com/prefix"])
def test_http_urls_are_plain_targets(uri: str) -> None:
    target = parse_tracking_uri(uri)

    assert (target.kind, target.uri, target.name, target.region) == (TargetKind.URL, uri, None, None)
    assert not target.is_sagemaker


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "databricks",
        "sqlite:///mlflow.db",
        "http://",
        "arn:aws:sagemaker:us-east-1:123456789012:mlflow-app/",
        "arn:aws:sagemaker:us-east-1:1234:mlflow-app/app-x",
        "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/bad_name",
    ],
)
def test_anything_else_is_rejected_with_the_accepted_forms(uri: str) -> None:
    with pytest.raises(InvalidTrackingUri, match="mlflow-tracking-server/<name>"):
        parse_tracking_uri(uri)


def test_durations_default_and_bounds() -> None:
    assert EXPIRES.parse(None, 300) == 300
    assert EXPIRES.parse("", 120) == 120
    assert EXPIRES.parse(" 7 ", 300) == 7
    assert SESSION.parse(1800, 43_200) == 1800
    with pytest.raises(InvalidDuration, match=r"session must be a whole number of seconds from 1800 to 43200"):
        SESSION.parse("-1", 43_200)
    with pytest.raises(InvalidDuration) as raised:
        EXPIRES.parse("1e2", 300)
    assert raised.value.parameter == "expires"


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        (
            "https://xyz.studio.us-east-1.sagemaker.aws/auth?token=SECRET123&x=1",
            "https://xyz.studio.us-east-1.sagemaker.aws/auth?token=<redacted>&x=<redacted>",
        ),
        ("https://h/p#access_token=SECRET123", "https://h/p#<redacted>"),
        ("http://user:SECRET123@127.0.0.1:5000/", "http://<redacted>@127.0.0.1:5000/"),
        ("https://h/p?SECRET123", "https://h/p?<redacted>"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ],
)
def test_redact_url_keeps_only_what_is_safe(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted
    assert "SECRET123" not in redact_url(url)


def test_settings_from_env() -> None:
    settings = PresignSettings.from_env(
        {
            "MLFLOW_TRACKING_URI": APP_ARN,
            "LITELLM_MLFLOW_URL_EXPIRES_SECONDS": "30",
            "LITELLM_MLFLOW_SESSION_SECONDS": "7200",
        }
    )

    assert (settings.target.kind, settings.expires_seconds, settings.session_seconds) == (TargetKind.APP, 30, 7200)
    assert PresignSettings.from_env({"MLFLOW_TRACKING_URI": APP_ARN}).session_seconds == 43_200
    with pytest.raises(ConfigurationError, match="MLFLOW_TRACKING_URI is not set"):
        PresignSettings.from_env({})


@pytest.fixture
def sagemaker():
    client = boto3.client("sagemaker", region_name="eu-west-1")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def test_presign_url_rejects_bad_durations_before_calling_sagemaker(sagemaker) -> None:
    client, _ = sagemaker

    with pytest.raises(InvalidDuration, match="expires"):
        presign_url(parse_tracking_uri(APP_ARN), client, expires_in_seconds=301)


def test_describe_app_reports_status_version_and_readiness(sagemaker) -> None:
    client, stub = sagemaker
    stub.add_response(
        "describe_mlflow_app",
        {
            "Arn": APP_ARN,
            "Name": "litellm",
            "Status": "Created",
            "MlflowVersion": "3.4.0",
            "MaintenanceStatus": "MaintenanceInProgress",
        },
        {"Arn": APP_ARN},
    )
    stub.add_response("describe_mlflow_app", {"Arn": APP_ARN, "Name": "litellm", "Status": "Updated"}, {"Arn": APP_ARN})

    in_maintenance = describe_mlflow(parse_tracking_uri(APP_ARN), client)
    ready = describe_mlflow(parse_tracking_uri(APP_ARN), client)

    assert (in_maintenance.name, in_maintenance.status, in_maintenance.version) == ("litellm", "Created", "3.4.0")
    assert not in_maintenance.ready
    assert ready.ready


def test_describe_tracking_server(sagemaker) -> None:
    client, stub = sagemaker
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/srv"
    stub.add_response(
        "describe_mlflow_tracking_server",
        {
            "TrackingServerArn": arn,
            "TrackingServerName": "srv",
            "TrackingServerStatus": "Stopped",
            "MlflowVersion": "2.16.2",
            "ArtifactStoreUri": "s3://bucket/mlflow",
        },
        {"TrackingServerName": "srv"},
    )

    described = describe_mlflow(parse_tracking_uri(arn), client)

    assert (described.kind, described.status, described.version, described.ready) == (
        TargetKind.TRACKING_SERVER,
        "Stopped",
        "2.16.2",
        False,
    )
    assert described.artifact_store == "s3://bucket/mlflow"


def test_describe_errors_map_like_presign(sagemaker) -> None:
    client, stub = sagemaker
    stub.add_client_error("describe_mlflow_app", "AccessDeniedException", "nope", 400)
    stub.add_client_error("describe_mlflow_app", "ResourceNotFound", "gone", 400)

    with pytest.raises(MlflowApiError) as denied:
        describe_mlflow(parse_tracking_uri(APP_ARN), client)
    with pytest.raises(MlflowApiError) as missing:
        describe_mlflow(parse_tracking_uri(APP_ARN), client)

    assert (denied.value.status, denied.value.code) == (403, "sagemaker_access_denied")
    assert "sagemaker:DescribeMlflowApp" in denied.value.message
    assert (missing.value.status, missing.value.code) == (404, "mlflow_not_found")
