"""The CDK app: `cdk deploy` runs `python3 -m infra.app` (see cdk.json); `make synth` runs `infra.synth`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import App

from infra.mlflow_arn import InvalidMlflowArnError
from infra.nag import add_aws_solutions_checks
from infra.regions import RegionUnavailable, check_region, deploy_region, required_types
from infra.settings import SettingsError, StackSettings
from infra.stack import LitellmMlflowStack

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def cdk_json_context() -> dict[str, Any]:
    """cdk.json's context (feature flags, defaults). The CDK CLI passes it in itself; `python -m infra.synth`
    and the tests do not go through the CLI, so they read it here to synthesize the same template."""
    return dict(json.loads(CDK_JSON.read_text()).get("context", {}))


def build_app(context: Mapping[str, Any] | None = None, outdir: str | None = None) -> tuple[App, LitellmMlflowStack]:
    """One app with one stack and the cdk-nag AwsSolutions checks; `context` adds to cdk.json/-c values."""
    app = App(context={**cdk_json_context(), **(context or {})}, outdir=outdir)
    settings = StackSettings.from_context(app.node.try_get_context)
    region = deploy_region(app.node.try_get_context)
    if region:  # refuse now, not half-way through a deploy, a region lacking what the stack creates
        check_region(region, required_types(settings.mlflow_kind, creates_mlflow=settings.existing_mlflow is None))
    # Environment-agnostic on purpose: nothing is looked up at synth time; `cdk deploy` picks the profile's region.
    stack = LitellmMlflowStack(
        app,
        settings.stack_name,
        settings=settings,
        description="litellm-mlflow: LiteLLM calls -> SQS -> Lambda -> SageMaker MLflow traces and metrics",
    )
    add_aws_solutions_checks(app)
    return app, stack


def main() -> None:
    try:
        app, _ = build_app()
    except (SettingsError, InvalidMlflowArnError, RegionUnavailable) as error:
        raise SystemExit(f"litellm-mlflow CDK app: {error}") from None
    app.synth()


if __name__ == "__main__":
    main()
