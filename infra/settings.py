"""Everything a user can tune with `cdk deploy -c key=value`, read and validated once, before any construct.

Context values arrive as strings from the command line and as JSON values from cdk.json, so every number is
converted here and checked against the AWS limit it feeds; a bad value fails the synth with its key named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra.mlflow_arn import MlflowArn, MlflowKind, parse_mlflow_arn

MLFLOW_MODES = ("app", "tracking-server")
TRACKING_SERVER_SIZES = ("Small", "Medium", "Large")
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 180, 365, 3653)  # the values CDK's RetentionDays offers here


class SettingsError(ValueError):
    """A context value is missing its constraints; the message names the key and the allowed range."""


@dataclass(frozen=True)
class StackSettings:
    stack_name: str = "LitellmMlflow"
    # The MLflow target: create an App (default) or a tracking server, or reuse `existing_mlflow`.
    mlflow_mode: str = "app"
    existing_mlflow: MlflowArn | None = None
    mlflow_name: str = "litellm-mlflow"
    tracking_server_size: str = "Small"
    mlflow_version: str = "3.0"
    # Reuse mode only: the existing target's artifact bucket, so the consumer may write trace data to it.
    artifact_bucket_name: str | None = None
    experiment_name: str = "litellm-monitoring"
    consumer_timeout_seconds: int = 120
    consumer_memory_mb: int = 1024
    batch_size: int = 1000
    batching_window_seconds: int = 5
    max_concurrency: int = 5
    max_receive_count: int = 5
    oldest_message_alarm_seconds: int = 900
    url_expires_seconds: int = 300
    session_seconds: int = 43200
    log_retention_days: int = 30

    @property
    def mlflow_kind(self) -> MlflowKind:
        if self.existing_mlflow is not None:
            return self.existing_mlflow.kind
        return MlflowKind.APP if self.mlflow_mode == "app" else MlflowKind.TRACKING_SERVER

    @property
    def visibility_timeout_seconds(self) -> int:
        """AWS's rule for an SQS event source: at least 6x the function timeout plus the batching window."""
        return 6 * self.consumer_timeout_seconds + self.batching_window_seconds

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> StackSettings:
        """Build from `node.try_get_context`; unknown keys are ignored, absent keys keep the defaults."""
        defaults = cls()

        def text(key: str, default: str | None) -> str | None:
            value = get(key)
            return default if value is None or str(value).strip() == "" else str(value).strip()

        def number(key: str, default: int, low: int, high: int) -> int:
            value = get(key)
            if value is None or str(value).strip() == "":
                return default
            try:
                parsed = int(str(value).strip())
            except ValueError:
                raise SettingsError(f"context {key}={value!r} is not an integer") from None
            if not low <= parsed <= high:
                raise SettingsError(f"context {key}={parsed} is outside the allowed range {low}..{high}")
            return parsed

        arn_text = text("mlflow_arn", None)
        mode = text("mlflow", None)
        if arn_text and mode:
            raise SettingsError(
                "give either -c mlflow=... (create a target) or -c mlflow_arn=... (reuse one), not both"
            )
        mode = mode or defaults.mlflow_mode
        if mode not in MLFLOW_MODES:
            raise SettingsError(f"context mlflow={mode!r} must be one of {', '.join(MLFLOW_MODES)}")
        size = text("tracking_server_size", defaults.tracking_server_size)
        if size not in TRACKING_SERVER_SIZES:
            raise SettingsError(
                f"context tracking_server_size={size!r} must be one of {', '.join(TRACKING_SERVER_SIZES)}"
            )
        bucket = text("artifact_bucket", None)
        if bucket and not arn_text:
            raise SettingsError(
                "context artifact_bucket only applies with -c mlflow_arn (a created target has its own)"
            )

        settings = cls(
            stack_name=text("stack_name", defaults.stack_name),
            mlflow_mode=mode,
            existing_mlflow=parse_mlflow_arn(arn_text) if arn_text else None,
            mlflow_name=text("mlflow_name", defaults.mlflow_name),
            tracking_server_size=size,
            mlflow_version=text("mlflow_version", defaults.mlflow_version),
            artifact_bucket_name=bucket,
            experiment_name=text("experiment_name", defaults.experiment_name),
            consumer_timeout_seconds=number("consumer_timeout_seconds", defaults.consumer_timeout_seconds, 10, 900),
            consumer_memory_mb=number("consumer_memory_mb", defaults.consumer_memory_mb, 512, 10240),
            batch_size=number("batch_size", defaults.batch_size, 1, 10000),
            batching_window_seconds=number("batching_window_seconds", defaults.batching_window_seconds, 0, 300),
            max_concurrency=number("max_concurrency", defaults.max_concurrency, 2, 1000),
            max_receive_count=number("max_receive_count", defaults.max_receive_count, 1, 1000),
            oldest_message_alarm_seconds=number(
                "oldest_message_alarm_seconds", defaults.oldest_message_alarm_seconds, 60, 1209600
            ),
            url_expires_seconds=number("url_expires_seconds", defaults.url_expires_seconds, 5, 300),
            session_seconds=number("session_seconds", defaults.session_seconds, 1800, 43200),
            log_retention_days=number("log_retention_days", defaults.log_retention_days, 1, 3653),
        )
        if settings.log_retention_days not in LOG_RETENTION_DAYS:
            raise SettingsError(
                f"context log_retention_days={settings.log_retention_days} must be one of {LOG_RETENTION_DAYS}"
            )
        if settings.batch_size > 10 and settings.batching_window_seconds < 1:
            raise SettingsError("SQS event sources with batch_size > 10 need batching_window_seconds >= 1")
        return settings
