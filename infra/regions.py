"""Which regions can host the stack: the resource types it creates, looked up in cfn-lint's bundled per-region
CloudFormation specs (the same data `cfn-lint` checks E3006 against), so the lists follow cfn-lint upgrades
instead of being kept by hand. A deploy into a region without them would fail late, half-created."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from infra.mlflow_arn import MlflowKind

FUNCTION_URL_TYPE = "AWS::Lambda::Url"
MLFLOW_TYPES = {
    MlflowKind.APP: "AWS::SageMaker::MlflowApp",
    MlflowKind.TRACKING_SERVER: "AWS::SageMaker::MlflowTrackingServer",
}
REGION_ENV = ("CDK_DEFAULT_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")  # the CDK CLI sets the first from the profile


class RegionUnavailable(ValueError):
    """The target region lacks a resource type the stack needs; the message names the regions that have it."""


def known_regions() -> list[str]:
    from cfnlint.helpers import REGIONS

    return sorted(REGIONS)


@cache
def resource_types(region: str) -> frozenset[str]:
    """The CloudFormation resource types cfn-lint's spec lists for `region` (loaded per region: they are large)."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    return frozenset(PROVIDER_SCHEMA_MANAGER.get_resource_types(region))


def regions_with(resource_type: str) -> list[str]:
    return [region for region in known_regions() if resource_type in resource_types(region)]


def deploy_region(context: Callable[[str], Any], environ: dict[str, str] | None = None) -> str | None:
    """The region the stack is synthesized for: `-c region=...`, else what the CDK CLI / AWS SDK would use."""
    value = context("region")
    if value:
        return str(value)
    env = os.environ if environ is None else environ
    return next((env[name] for name in REGION_ENV if env.get(name)), None)


def required_types(mlflow_kind: MlflowKind, creates_mlflow: bool) -> list[str]:
    """What this stack creates that not every region has: function URLs, and the MLflow resource it creates."""
    return [FUNCTION_URL_TYPE, *([MLFLOW_TYPES[mlflow_kind]] if creates_mlflow else [])]


def check_region(region: str, needed: Iterable[str]) -> None:
    """Raise RegionUnavailable (one line) when `region` lacks any of the `needed` resource types."""
    if region not in known_regions():
        raise RegionUnavailable(f"unknown region {region!r}: cfn-lint knows {', '.join(known_regions())}")
    needed = list(needed)
    missing = [resource_type for resource_type in needed if resource_type not in resource_types(region)]
    if missing:
        usable = [other for other in known_regions() if set(needed) <= resource_types(other)]
        raise RegionUnavailable(
            f"{' and '.join(missing)} not available in {region}; regions with everything this stack creates "
            f"({', '.join(needed)}): {', '.join(usable)}"
        )
