"""Tell a SageMaker tracking-server ARN from an MLflow-App ARN, so a reused target gets the right IAM.

The patterns follow botocore's sagemaker service model (`TrackingServerArn`, `MlflowAppArn`), narrowed to what
a real ARN holds (a region, a 12-digit account, a non-empty name or id).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class MlflowKind(StrEnum):
    """The two managed MLflow flavours; the value is what the `MlflowKind` stack output says."""

    APP = "app"
    TRACKING_SERVER = "tracking-server"


_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"(?P<type>mlflow-tracking-server|mlflow-app)/(?P<name>[A-Za-z0-9](?:-*[A-Za-z0-9])*)$"
)
_KIND_BY_TYPE = {"mlflow-tracking-server": MlflowKind.TRACKING_SERVER, "mlflow-app": MlflowKind.APP}


class InvalidMlflowArnError(ValueError):
    """The `mlflow_arn` context value is not a SageMaker tracking-server or MLflow-App ARN."""


@dataclass(frozen=True)
class MlflowArn:
    arn: str
    kind: MlflowKind
    partition: str
    region: str
    account: str
    name: str


def parse_mlflow_arn(arn: str) -> MlflowArn:
    """Parse and classify; raise `InvalidMlflowArnError` naming the expected shapes."""
    match = _ARN.match(arn.strip())
    if not match:
        raise InvalidMlflowArnError(
            f"mlflow_arn {arn!r} is not a SageMaker MLflow ARN; expected "
            "arn:aws:sagemaker:<region>:<account>:mlflow-tracking-server/<name> or "
            "arn:aws:sagemaker:<region>:<account>:mlflow-app/<id>"
        )
    return MlflowArn(
        arn=arn.strip(),
        kind=_KIND_BY_TYPE[match["type"]],
        partition=match["partition"],
        region=match["region"],
        account=match["account"],
        name=match["name"],
    )
