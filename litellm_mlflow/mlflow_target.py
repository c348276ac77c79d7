"""What `MLFLOW_TRACKING_URI` points at: a SageMaker tracking server, a SageMaker MLflow App, or a plain MLflow URL.

The presign Lambda, the consumer and the CLI all branch on this, so the parsing lives in one place. Pure Python (no
boto3, no mlflow) so any side can import it cheaply.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from enum import StrEnum


class TargetKind(StrEnum):
    """The values match the stack's `MlflowKind` output (`app` | `tracking-server`), plus `url` for a plain server."""

    TRACKING_SERVER = "tracking-server"
    APP = "app"
    URL = "url"


class InvalidTrackingUri(ValueError):
    """The tracking URI is neither a SageMaker MLflow ARN nor an http(s) URL."""


_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"(?P<resource>mlflow-tracking-server|mlflow-app)/(?P<name>[A-Za-z0-9](?:-*[A-Za-z0-9])*)"
)
_KIND_BY_RESOURCE = {"mlflow-tracking-server": TargetKind.TRACKING_SERVER, "mlflow-app": TargetKind.APP}


@dataclass(frozen=True)
class MlflowTarget:
    """A parsed tracking URI: `name` is the tracking server name or the App id; ARN-only fields are None for URLs."""

    kind: TargetKind
    uri: str
    name: str | None = None
    region: str | None = None
    account: str | None = None
    partition: str | None = None

    @property
    def is_sagemaker(self) -> bool:
        return self.kind is not TargetKind.URL


def parse_tracking_uri(uri: str) -> MlflowTarget:
    """Classify `uri`; raise InvalidTrackingUri with the accepted forms when it is none of them."""
    value = (uri or "").strip()
    match = _ARN.fullmatch(value)
    if match:
        return MlflowTarget(
            kind=_KIND_BY_RESOURCE[match["resource"]],
            uri=value,
            name=match["name"],
            region=match["region"],
            account=match["account"],
            partition=match["partition"],
        )
    parts = urllib.parse.urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc:
        return MlflowTarget(kind=TargetKind.URL, uri=value)
    raise InvalidTrackingUri(
        f"MLFLOW_TRACKING_URI {value!r} is not usable: expected a SageMaker tracking-server ARN "
        "(arn:aws:sagemaker:<region>:<account>:mlflow-tracking-server/<name>), an MLflow App ARN "
        "(arn:aws:sagemaker:<region>:<account>:mlflow-app/<id>) or an http(s):// MLflow URL"
    )
