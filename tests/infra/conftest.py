"""Synthesized stacks for the infra tests: one synth per MLflow mode per session (jsii start-up is the slow
part), with asset bundling skipped (`aws:cdk:bundling-stacks: []`) so no pip run happens here."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The machine's node may be past jsii's support window; the warning box is noise in test output.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")

from aws_cdk.assertions import Template

from infra.app import build_app
from infra.stack import LitellmMlflowStack

SKIP_BUNDLING = {"aws:cdk:bundling-stacks": []}
EXISTING_SERVER_ARN = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/team-mlflow"
EXISTING_APP_ARN = "arn:aws:sagemaker:us-west-2:123456789012:mlflow-app/app-abc123XYZ"


@dataclass
class Synth:
    stack: LitellmMlflowStack
    template: Template
    raw: dict[str, Any]
    outdir: Path

    def logical_id(self, construct: Any) -> str:
        """Logical id of an L2 construct's CloudFormation resource (or of an L1 resource itself)."""
        element = getattr(construct.node, "default_child", None) or construct
        return self.stack.resolve(self.stack.get_logical_id(element))

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.raw["Resources"].items() if v["Type"] == resource_type}

    def role_statements(self, role: Any) -> list[dict[str, Any]]:
        """Every statement of every inline policy attached to `role`, Action always a sorted list."""
        role_ref = {"Ref": self.logical_id(role)}
        statements = []
        for policy in self.resources("AWS::IAM::Policy").values():
            if role_ref in policy["Properties"]["Roles"]:
                statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
        return [normalise(s) for s in statements]


def normalise(statement: dict[str, Any]) -> dict[str, Any]:
    actions = statement["Action"]
    return {**statement, "Action": sorted([actions] if isinstance(actions, str) else actions)}


def get_att(logical_id: str, attribute: str = "Arn") -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, attribute]}


def _synth(outdir: str, context: dict[str, Any]) -> Synth:
    app, stack = build_app({**SKIP_BUNDLING, **context}, outdir=outdir)
    assembly = app.synth()  # raises if cdk-nag reports any unacknowledged finding
    raw = assembly.get_stack_artifact(stack.artifact_id).template
    return Synth(stack=stack, template=Template.from_json(raw), raw=raw, outdir=Path(outdir))


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[dict[str, Any]], Synth]]:
    """Synthesize with extra context into a fresh cloud-assembly directory."""

    def run(context: dict[str, Any]) -> Synth:
        return _synth(str(tmp_path_factory.mktemp("cdk.out")), context)

    yield run


@pytest.fixture(scope="session")
def app_mode(synth: Callable[[dict[str, Any]], Synth]) -> Synth:
    """The default: a serverless MLflow App with its own bucket, every other setting at its default."""
    return synth({})


@pytest.fixture(scope="session")
def tracking_server_mode(synth: Callable[[dict[str, Any]], Synth]) -> Synth:
    return synth({"mlflow": "tracking-server"})


@pytest.fixture(scope="session")
def existing_server_mode(synth: Callable[[dict[str, Any]], Synth]) -> Synth:
    """Reuse a tracking server and its bucket; also every tunable overridden as a `-c` string would be."""
    return synth(
        {
            "mlflow_arn": EXISTING_SERVER_ARN,
            "artifact_bucket": "team-mlflow-artifacts",
            "experiment_name": "prod-llm-calls",
            "batch_size": "500",
            "batching_window_seconds": "20",
            "max_concurrency": "10",
            "consumer_timeout_seconds": "60",
            "max_receive_count": "3",
            "url_expires_seconds": "60",
            "session_seconds": "3600",
            "stack_name": "LitellmMlflowProd",
            "alarm_email": "llm-ops@example.com",
            "error_rate_alarm_percent": "10",
            "error_rate_alarm_periods": "2",
            "hourly_budget_usd": "2.5",
            "team_hourly_budgets_usd": '{"search": 1.5, "ads": 0.75}',
            "no_calls_alarm_minutes": "30",
            "team_metrics": "false",
        }
    )


@pytest.fixture(scope="session")
def existing_app_mode(synth: Callable[[dict[str, Any]], Synth]) -> Synth:
    """Reuse an MLflow App without naming its bucket: no S3 grant at all."""
    return synth({"mlflow_arn": EXISTING_APP_ARN})
