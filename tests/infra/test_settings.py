"""Context parsing and MLflow ARN classification: pure Python, no synth."""

from __future__ import annotations

import pytest

from infra.mlflow_arn import InvalidMlflowArnError, MlflowKind, parse_mlflow_arn
from infra.settings import SettingsError, StackSettings


def settings(**context: object) -> StackSettings:
    return StackSettings.from_context(context.get)


@pytest.mark.parametrize(
    ("arn", "kind", "name"),
    [
        (
            "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/my-server",
            MlflowKind.TRACKING_SERVER,
            "my-server",
        ),
        ("arn:aws:sagemaker:us-east-1:123456789012:mlflow-app/app-0a1b2c3d4e", MlflowKind.APP, "app-0a1b2c3d4e"),
        ("arn:aws-cn:sagemaker:cn-north-1:123456789012:mlflow-app/x1", MlflowKind.APP, "x1"),
    ],
)
def test_arn_kind_is_derived_from_the_resource_type(arn: str, kind: MlflowKind, name: str) -> None:
    parsed = parse_mlflow_arn(arn)
    assert (parsed.kind, parsed.name, parsed.account) == (kind, name, "123456789012")


@pytest.mark.parametrize(
    "arn",
    [
        "my-server",
        "https://mlflow.example.com",
        "arn:aws:s3:::my-bucket",
        "arn:aws:sagemaker:eu-west-1:123456789012:notebook-instance/nb",
        "arn:aws:sagemaker:eu-west-1:12345:mlflow-tracking-server/short-account",
        "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/",
        "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-app/bad_name",
    ],
)
def test_a_bad_arn_fails_naming_both_expected_shapes(arn: str) -> None:
    with pytest.raises(InvalidMlflowArnError) as error:
        parse_mlflow_arn(arn)
    assert "mlflow-tracking-server/<name>" in str(error.value)
    assert "mlflow-app/<id>" in str(error.value)
    assert repr(arn) in str(error.value)


def test_defaults() -> None:
    s = settings()
    assert (s.mlflow_kind, s.existing_mlflow, s.stack_name) == (MlflowKind.APP, None, "LitellmMlflow")
    assert (s.tracking_server_size, s.mlflow_version, s.experiment_name) == ("Small", "3.0", "litellm-monitoring")
    assert s.batch_size > 10 and s.batching_window_seconds >= 1 and s.max_concurrency >= 2
    assert s.visibility_timeout_seconds == 6 * s.consumer_timeout_seconds + s.batching_window_seconds


def test_command_line_strings_become_numbers() -> None:
    s = settings(
        batch_size="250", consumer_timeout_seconds="30", batching_window_seconds="2", tracking_server_size="Large"
    )
    assert (s.batch_size, s.consumer_timeout_seconds, s.tracking_server_size) == (250, 30, "Large")
    assert s.visibility_timeout_seconds == 182


def test_tracking_server_mode_and_existing_arn_mode() -> None:
    assert settings(mlflow="tracking-server").mlflow_kind is MlflowKind.TRACKING_SERVER
    reused = settings(mlflow_arn="arn:aws:sagemaker:eu-west-1:123456789012:mlflow-app/a1", artifact_bucket="b")
    assert (reused.mlflow_kind, reused.artifact_bucket_name) == (MlflowKind.APP, "b")


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"mlflow": "server"}, "mlflow='server' must be one of app, tracking-server"),
        ({"tracking_server_size": "Huge"}, "tracking_server_size='Huge'"),
        ({"batch_size": "lots"}, "batch_size='lots' is not an integer"),
        ({"batch_size": "20000"}, "batch_size=20000 is outside the allowed range 1..10000"),
        ({"max_concurrency": "1"}, "max_concurrency=1 is outside the allowed range 2..1000"),
        ({"url_expires_seconds": "600"}, "url_expires_seconds=600"),
        ({"session_seconds": "60"}, "session_seconds=60"),
        ({"batching_window_seconds": "0"}, "batch_size > 10 need batching_window_seconds >= 1"),
        ({"log_retention_days": "10"}, "log_retention_days=10 must be one of"),
        ({"artifact_bucket": "b"}, "artifact_bucket only applies with -c mlflow_arn"),
        (
            {"mlflow": "app", "mlflow_arn": "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-app/a1"},
            "not both",
        ),
    ],
)
def test_bad_context_names_the_key(context: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as error:
        settings(**context)
    assert message in str(error.value)


def test_bad_arn_in_context_is_rejected() -> None:
    with pytest.raises(InvalidMlflowArnError):
        settings(mlflow_arn="arn:aws:sagemaker:eu-west-1:123456789012:endpoint/x")


def test_every_allowed_log_retention_maps_to_a_cdk_value() -> None:
    from infra.functions import RETENTION_BY_DAYS
    from infra.settings import LOG_RETENTION_DAYS

    assert sorted(RETENTION_BY_DAYS) == sorted(LOG_RETENTION_DAYS)


def test_monitoring_defaults_and_overrides() -> None:
    default = settings().monitoring
    assert (default.alarm_email, default.error_rate_alarm_percent, default.hourly_budget_usd) == (None, 20, 10.0)
    assert (default.team_hourly_budgets_usd, default.no_calls_alarm_minutes, default.team_metrics) == ({}, 0, True)
    custom = settings(
        alarm_email=" ops@example.com ",
        hourly_budget_usd="0",
        team_hourly_budgets_usd='{"search": "5", "ads": 0}',
        no_calls_alarm_minutes="45",
        team_metrics="False",
    ).monitoring
    assert (custom.alarm_email, custom.hourly_budget_usd, custom.no_calls_alarm_minutes) == ("ops@example.com", 0, 45)
    assert custom.team_hourly_budgets_usd == {"search": 5.0}  # a 0 budget is no alarm
    assert custom.team_metrics is False
    assert settings(team_hourly_budgets_usd={"search": 1.5}).monitoring.team_hourly_budgets_usd == {"search": 1.5}


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"alarm_email": "ops at example.com"}, "alarm_email='ops at example.com' is not an e-mail address"),
        ({"error_rate_alarm_percent": "150"}, "error_rate_alarm_percent=150 is outside the allowed range 0..100"),
        ({"hourly_budget_usd": "ten"}, "hourly_budget_usd='ten' is not a number of US dollars"),
        ({"hourly_budget_usd": "-1"}, "hourly_budget_usd='-1' must be a dollar amount of 0 or more"),
        ({"team_hourly_budgets_usd": "search=5"}, "team_hourly_budgets_usd='search=5' is not JSON"),
        ({"team_hourly_budgets_usd": "[5]"}, "team_hourly_budgets_usd must be a JSON object"),
        ({"team_hourly_budgets_usd": '{"search": "lots"}'}, "team_hourly_budgets_usd['search']='lots'"),
        ({"no_calls_alarm_minutes": "7"}, "no_calls_alarm_minutes=7 must be 0 (off) or a multiple of 5"),
        ({"no_calls_alarm_minutes": "240"}, "no_calls_alarm_minutes=240 is outside the allowed range 0..180"),
        ({"team_metrics": "maybe"}, "team_metrics='maybe' must be true or false"),
    ],
)
def test_bad_monitoring_values_name_their_key(context: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError) as error:
        settings(**context)
    assert message in str(error.value)
