"""Presigned MLflow UI links for a SageMaker tracking server or MLflow App (and plain URLs for a local MLflow).

The presign Lambda and the CLI share this: validate the two durations, call the right SageMaker API, and turn
SageMaker's errors into an HTTP-shaped `MlflowApiError` (404 / 403 / 429 / 503 / 502) that says what to do. A
presigned URL is a single-use credential: nothing here logs it, and `redact_url` is what callers log instead.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from litellm_mlflow.mlflow_target import InvalidTrackingUri, MlflowTarget, TargetKind, parse_tracking_uri

DEFAULT_EXPIRES_SECONDS = 300
DEFAULT_SESSION_SECONDS = 43_200
THROTTLE_RETRY_AFTER_SECONDS = 5
REDACTED = "<redacted>"

NOT_FOUND_CODES = frozenset({"ResourceNotFound", "ResourceNotFoundException", "NotFoundException"})
ACCESS_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "NotAuthorized"})
THROTTLED_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded", "SlowDown"}
)
# How SageMaker answers a call on a resource in the wrong state ("... is currently in status UPDATING").
STATE_CODES = frozenset({"ValidationException", "ConflictException", "ResourceInUse", "ResourceNotReady"})

TRACKING_SERVER_READY = frozenset({"Created", "Updated", "Started", "MaintenanceComplete"})
APP_READY = frozenset({"Created", "Updated"})
# Every status the service model lists for either kind; used to spot a status inside an error message.
KNOWN_STATUSES = (
    "CreateFailed", "UpdateFailed", "DeleteFailed", "StopFailed", "StartFailed", "MaintenanceFailed",
    "MaintenanceInProgress", "MaintenanceComplete", "Creating", "Created", "Updating", "Updated", "Deleting",
    "Deleted", "Stopping", "Stopped", "Starting", "Started",
)  # fmt: skip


class InvalidDuration(ValueError):
    """A duration parameter is not an integer inside its allowed range; the message names both."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True)
class DurationRange:
    """An integer number of seconds with the bounds SageMaker enforces, named as the caller spells it."""

    parameter: str
    low: int
    high: int

    def parse(self, raw: str | int | None, default: int) -> int:
        """`raw` as seconds, `default` when absent; InvalidDuration (naming the parameter and range) otherwise."""
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            value = default
        else:
            try:
                value = int(str(raw).strip())
            except ValueError:
                raise InvalidDuration(self.parameter, self._message(raw)) from None
        if not self.low <= value <= self.high:
            raise InvalidDuration(self.parameter, self._message(raw if raw is not None else value))
        return value

    def _message(self, raw: object) -> str:
        shown = str(raw)[:32]
        return f"{self.parameter} must be a whole number of seconds from {self.low} to {self.high}, got {shown!r}"


# Query parameter names of the Lambda (and the CLI's --expires / --session).
EXPIRES = DurationRange("expires", 5, 300)
SESSION = DurationRange("session", 1_800, 43_200)


class ConfigurationError(RuntimeError):
    """The presign function's environment is unusable; raised at cold start so a bad deploy fails loudly."""


@dataclass(frozen=True)
class PresignSettings:
    """The presign function's configuration, read once at cold start."""

    target: MlflowTarget
    expires_seconds: int = DEFAULT_EXPIRES_SECONDS
    session_seconds: int = DEFAULT_SESSION_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PresignSettings:
        """From MLFLOW_TRACKING_URI, LITELLM_MLFLOW_URL_EXPIRES_SECONDS and LITELLM_MLFLOW_SESSION_SECONDS."""
        uri = environ.get("MLFLOW_TRACKING_URI", "")
        if not uri.strip():
            raise ConfigurationError("MLFLOW_TRACKING_URI is not set: the presign function does not know its MLflow")
        try:
            target = parse_tracking_uri(uri)
        except InvalidTrackingUri as exc:
            raise ConfigurationError(str(exc)) from None
        durations = {}
        for variable, duration, default in (
            ("LITELLM_MLFLOW_URL_EXPIRES_SECONDS", EXPIRES, DEFAULT_EXPIRES_SECONDS),
            ("LITELLM_MLFLOW_SESSION_SECONDS", SESSION, DEFAULT_SESSION_SECONDS),
        ):
            try:
                durations[duration.parameter] = duration.parse(environ.get(variable), default)
            except InvalidDuration as exc:
                raise ConfigurationError(f"{variable}: {exc}") from None
        return cls(target, durations[EXPIRES.parameter], durations[SESSION.parameter])


@dataclass(frozen=True)
class PresignedUrl:
    """A fresh UI link. The durations are None for a plain MLflow URL, which has neither."""

    url: str
    kind: TargetKind
    expires_in_seconds: int | None
    session_expiration_seconds: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "expires_in_seconds": self.expires_in_seconds,
            "session_expiration_seconds": self.session_expiration_seconds,
            "kind": str(self.kind),
        }


class MlflowApiError(Exception):
    """A SageMaker failure as an HTTP answer: status, a stable code, a message that says what to do."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: int | None = None,
        resource_status: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.resource_status = resource_status

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.resource_status is not None:
            body["status"] = self.resource_status
        if self.retry_after is not None:
            body["retry_after_seconds"] = self.retry_after
        return body


@dataclass(frozen=True)
class MlflowDescription:
    """What `info` shows about the MLflow resource (the workshop's get-tracking-info)."""

    kind: TargetKind
    arn: str
    name: str | None
    status: str | None
    version: str | None
    ready: bool
    artifact_store: str | None = None
    maintenance_status: str | None = None


def presign_url(
    target: MlflowTarget,
    sagemaker: Any,
    expires_in_seconds: int = DEFAULT_EXPIRES_SECONDS,
    session_seconds: int = DEFAULT_SESSION_SECONDS,
) -> PresignedUrl:
    """A fresh single-use UI link for `target`; `sagemaker` is a boto3 SageMaker client (unused for plain URLs)."""
    if target.kind is TargetKind.URL:
        return PresignedUrl(target.uri, target.kind, None, None)
    expires = EXPIRES.parse(expires_in_seconds, DEFAULT_EXPIRES_SECONDS)
    session = SESSION.parse(session_seconds, DEFAULT_SESSION_SECONDS)
    try:
        if target.kind is TargetKind.TRACKING_SERVER:
            response = sagemaker.create_presigned_mlflow_tracking_server_url(
                TrackingServerName=target.name,
                ExpiresInSeconds=expires,
                SessionExpirationDurationInSeconds=session,
            )
        else:
            response = sagemaker.create_presigned_mlflow_app_url(
                Arn=target.uri,
                ExpiresInSeconds=expires,
                SessionExpirationDurationInSeconds=session,
            )
    except ClientError as exc:
        raise _presign_error(exc, target, sagemaker) from None
    except NoCredentialsError:
        raise  # the caller's to explain (the CLI has its own exit code for it)
    except BotoCoreError as exc:
        raise MlflowApiError(502, "sagemaker_unreachable", f"could not reach SageMaker: {exc}") from None
    return PresignedUrl(response["AuthorizedUrl"], target.kind, expires, session)


def describe_mlflow(target: MlflowTarget, sagemaker: Any) -> MlflowDescription:
    """Status and version of a SageMaker MLflow resource; MlflowApiError (404/403/429/502) when it cannot be read."""
    if target.kind is TargetKind.URL:
        raise ValueError("a plain MLflow URL has nothing to describe")
    try:
        if target.kind is TargetKind.TRACKING_SERVER:
            found = sagemaker.describe_mlflow_tracking_server(TrackingServerName=target.name)
            status = found.get("TrackingServerStatus")
            maintenance = found.get("TrackingServerMaintenanceStatus")
            return MlflowDescription(
                kind=target.kind,
                arn=found.get("TrackingServerArn", target.uri),
                name=found.get("TrackingServerName", target.name),
                status=status,
                version=found.get("MlflowVersion"),
                ready=status in TRACKING_SERVER_READY,
                artifact_store=found.get("ArtifactStoreUri"),
                maintenance_status=maintenance,
            )
        found = sagemaker.describe_mlflow_app(Arn=target.uri)
        status = found.get("Status")
        maintenance = found.get("MaintenanceStatus")
        return MlflowDescription(
            kind=target.kind,
            arn=found.get("Arn", target.uri),
            name=found.get("Name", target.name),
            status=status,
            version=found.get("MlflowVersion"),
            ready=status in APP_READY and maintenance != "MaintenanceInProgress",
            artifact_store=found.get("ArtifactStoreUri"),
            maintenance_status=maintenance,
        )
    except ClientError as exc:
        raise _common_error(exc, target, action=_describe_action(target)) from None
    except NoCredentialsError:
        raise
    except BotoCoreError as exc:
        raise MlflowApiError(502, "sagemaker_unreachable", f"could not reach SageMaker: {exc}") from None


def redact_url(url: str) -> str:
    """The URL with every query value, any fragment and any user:password replaced: safe to log."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    if "@" in parts.netloc:
        netloc = f"{REDACTED}@{netloc}"
    query = "&".join(_redact_query_field(field) for field in parts.query.split("&")) if parts.query else ""
    fragment = REDACTED if parts.fragment else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def _redact_query_field(field: str) -> str:
    """`name=<redacted>` for a short plain name; a bare value or an odd name could be the secret itself."""
    name, has_value, _ = field.partition("=")
    if has_value and re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", name):
        return f"{name}={REDACTED}"
    return REDACTED


def _presign_action(target: MlflowTarget) -> str:
    if target.kind is TargetKind.TRACKING_SERVER:
        return "sagemaker:CreatePresignedMlflowTrackingServerUrl"
    return "sagemaker:CreatePresignedMlflowAppUrl"


def _describe_action(target: MlflowTarget) -> str:
    if target.kind is TargetKind.TRACKING_SERVER:
        return "sagemaker:DescribeMlflowTrackingServer"
    return "sagemaker:DescribeMlflowApp"


def _label(target: MlflowTarget) -> str:
    kind = "tracking server" if target.kind is TargetKind.TRACKING_SERVER else "MLflow App"
    return f"SageMaker MLflow {kind} {target.name} ({target.region})"


def _error_parts(exc: ClientError) -> tuple[str, str]:
    error = exc.response.get("Error", {})
    return str(error.get("Code", "Unknown")), str(error.get("Message", "")).strip()


def _common_error(exc: ClientError, target: MlflowTarget, action: str) -> MlflowApiError:
    """The mapping shared by presign and describe: not found, access denied, throttled, anything else."""
    code, detail = _error_parts(exc)
    if code in NOT_FOUND_CODES:
        return MlflowApiError(404, "mlflow_not_found", f"{_label(target)} was not found: {detail or code}")
    if code in ACCESS_DENIED_CODES:
        return MlflowApiError(
            403,
            "sagemaker_access_denied",
            f"access denied calling {action} on {target.uri}: grant it to the calling role ({detail or code})",
        )
    if code in THROTTLED_CODES:
        return MlflowApiError(
            429,
            "throttled",
            f"SageMaker throttled the request ({code}); retry in {THROTTLE_RETRY_AFTER_SECONDS} s",
            retry_after=THROTTLE_RETRY_AFTER_SECONDS,
        )
    return MlflowApiError(502, "sagemaker_error", f"SageMaker refused {action} on {target.uri}: {code}: {detail}")


def _presign_error(exc: ClientError, target: MlflowTarget, sagemaker: Any) -> MlflowApiError:
    """Like _common_error, but a state conflict becomes 503 with the resource's status (described, or read off
    the error message when this role may not describe)."""
    code, detail = _error_parts(exc)
    if code not in STATE_CODES:
        return _common_error(exc, target, action=_presign_action(target))
    status = _status_by_describe(target, sagemaker) or _status_in_message(detail)
    ready = TRACKING_SERVER_READY if target.kind is TargetKind.TRACKING_SERVER else APP_READY
    if status is None or status in ready:
        return _common_error(exc, target, action=_presign_action(target))
    return MlflowApiError(
        503,
        "mlflow_not_ready",
        f"{_label(target)} is not ready (status {status}). {_what_to_do(target, status)}",
        resource_status=status,
    )


def _status_by_describe(target: MlflowTarget, sagemaker: Any) -> str | None:
    try:
        description = describe_mlflow(target, sagemaker)
    except MlflowApiError:
        return None
    if description.maintenance_status == "MaintenanceInProgress":
        return "MaintenanceInProgress"
    return description.status


_STATUS_WORDS = {status.lower(): status for status in KNOWN_STATUSES}
_WORD = re.compile(r"[A-Za-z_]+")


def _status_in_message(message: str) -> str | None:
    for word in _WORD.findall(message):
        status = _STATUS_WORDS.get(word.replace("_", "").lower())
        if status:
            return status
    return None


def _what_to_do(target: MlflowTarget, status: str) -> str:
    if target.kind is TargetKind.TRACKING_SERVER and status in ("Stopped", "StopFailed"):
        return (
            f"Start it (aws sagemaker start-mlflow-tracking-server --tracking-server-name {target.name} "
            f"--region {target.region}) and retry in a few minutes."
        )
    if status.endswith("Failed"):
        return "Check it in the SageMaker console; it needs attention before the UI can open."
    return "Retry in a few minutes."
