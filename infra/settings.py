"""Everything a user can tune with `cdk deploy -c key=value`, read and validated once, before any construct.

Context values arrive as strings from the command line and as JSON values from cdk.json, so every number is
converted here and checked against the AWS limit it feeds; a bad value fails the synth with its key named.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
    # Messages per invocation. The callback packs up to 10 events a message (LITELLM_MLFLOW_EVENTS_PER_MESSAGE), so
    # 50 messages is up to 500 events: a full batch within the timeout on the slowest supported MLflow at 30 ms
    # (BENCHMARKS.md). With one event a message (packing off, or LiteLLM's aws_sqs) raise it to 500.
    batch_size: int = 50
    batching_window_seconds: int = 5
    max_concurrency: int = 5
    max_receive_count: int = 5
    oldest_message_alarm_seconds: int = 900
    url_expires_seconds: int = 300
    session_seconds: int = 43200
    log_retention_days: int = 30
    monitoring: MonitoringSettings = field(default_factory=lambda: MonitoringSettings())

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
            monitoring=MonitoringSettings.from_context(get),
        )
        if settings.log_retention_days not in LOG_RETENTION_DAYS:
            raise SettingsError(
                f"context log_retention_days={settings.log_retention_days} must be one of {LOG_RETENTION_DAYS}"
            )
        if settings.batch_size > 10 and settings.batching_window_seconds < 1:
            raise SettingsError("SQS event sources with batch_size > 10 need batching_window_seconds >= 1")
        return settings


@dataclass(frozen=True)
class MonitoringSettings:
    """The usage metrics and the alarms (infra/alarms.py): thresholds, budgets, and where alarms are sent."""

    alarm_email: str | None = None
    error_rate_alarm_percent: int = 20  # any model group's share of failed calls; 0 turns the alarm off
    error_rate_alarm_periods: int = 3  # consecutive 5-minute periods over the threshold
    hourly_budget_usd: float = 10.0  # all calls' cost in one hour; 0 turns the alarm off
    team_hourly_budgets_usd: Mapping[str, float] = field(default_factory=dict)
    no_calls_alarm_minutes: int = 0  # alarm when no call is stored for this long; 0 (default) = off
    team_metrics: bool = True  # per-team Calls and CostUSD (a billed custom metric per team and name)

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> MonitoringSettings:
        defaults = cls()
        email = _context_text(get, "alarm_email")
        if email is not None and (email.count("@") != 1 or any(c.isspace() for c in email)):
            raise SettingsError(f"context alarm_email={email!r} is not an e-mail address")
        return cls(
            alarm_email=email,
            error_rate_alarm_percent=_context_int(
                get, "error_rate_alarm_percent", defaults.error_rate_alarm_percent, 0, 100
            ),
            error_rate_alarm_periods=_context_int(
                get, "error_rate_alarm_periods", defaults.error_rate_alarm_periods, 1, 36
            ),
            hourly_budget_usd=_context_usd(get("hourly_budget_usd"), "hourly_budget_usd", defaults.hourly_budget_usd),
            team_hourly_budgets_usd=_team_budgets(get("team_hourly_budgets_usd")),
            no_calls_alarm_minutes=_no_calls_minutes(get),
            team_metrics=_context_bool(get, "team_metrics", defaults.team_metrics),
        )


def _context_text(get: Callable[[str], Any], key: str) -> str | None:
    value = get(key)
    return None if value is None or str(value).strip() == "" else str(value).strip()


def _context_int(get: Callable[[str], Any], key: str, default: int, low: int, high: int) -> int:
    text = _context_text(get, key)
    if text is None:
        return default
    try:
        parsed = int(text)
    except ValueError:
        raise SettingsError(f"context {key}={text!r} is not an integer") from None
    if not low <= parsed <= high:
        raise SettingsError(f"context {key}={parsed} is outside the allowed range {low}..{high}")
    return parsed


def _context_usd(value: Any, key: str, default: float) -> float:
    if value is None or str(value).strip() == "":
        return default
    try:
        parsed = float(str(value).strip())
    except ValueError:
        raise SettingsError(f"context {key}={value!r} is not a number of US dollars") from None
    if not math.isfinite(parsed) or parsed < 0:
        raise SettingsError(f"context {key}={value!r} must be a dollar amount of 0 or more (0 turns it off)")
    return parsed


def _context_bool(get: Callable[[str], Any], key: str, default: bool) -> bool:
    text = _context_text(get, key)
    if text is None:
        return default
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise SettingsError(f"context {key}={text!r} must be true or false")


def _team_budgets(value: Any) -> dict[str, float]:
    """A JSON object {team: USD per hour} (a string from -c, an object from cdk.json); teams as the metrics name
    them (alias, else id)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    try:
        budgets = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        raise SettingsError(
            f"context team_hourly_budgets_usd={value!r} is not JSON; give an object like '{{\"search\": 5}}'"
        ) from None
    if not isinstance(budgets, Mapping):
        raise SettingsError("context team_hourly_budgets_usd must be a JSON object of team name to dollars per hour")
    parsed = {}
    for team, usd in budgets.items():
        if not str(team).strip():
            raise SettingsError("context team_hourly_budgets_usd has an empty team name")
        parsed[str(team).strip()] = _context_usd(usd, f"team_hourly_budgets_usd[{team!r}]", 0.0)
    return {team: usd for team, usd in parsed.items() if usd > 0}


def _no_calls_minutes(get: Callable[[str], Any]) -> int:
    """0 (off) or 5..180 in whole 5-minute steps: Metrics Insights alarms look back three hours at most."""
    minutes = _context_int(get, "no_calls_alarm_minutes", 0, 0, 180)
    if minutes and (minutes < 5 or minutes % 5):
        raise SettingsError(
            f"context no_calls_alarm_minutes={minutes} must be 0 (off) or a multiple of 5 from 5 to 180"
        )
    return minutes
