"""cdk-nag AwsSolutions: every mode synthesizes clean, every acknowledgment is deliberate, and a new finding fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import Validations
from aws_cdk import aws_s3 as s3

from infra.app import build_app
from tests.infra.conftest import SKIP_BUNDLING, Synth

ACKNOWLEDGED = Validations.ACKNOWLEDGED_RULES_METADATA_KEY


def acknowledgments(synth: Synth) -> dict[tuple[str, str], str]:
    """(construct path, rule id) -> reason, for every acknowledgment in the stack."""
    found = {}
    for construct in synth.stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == ACKNOWLEDGED:
                for rule, reason in entry.data.items():
                    found[(construct.node.path, rule.split("::", 1)[-1])] = reason
    return found


@pytest.mark.parametrize("mode", ["app_mode", "tracking_server_mode", "existing_server_mode", "existing_app_mode"])
def test_every_mode_synthesizes_with_no_unacknowledged_finding(mode: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(mode)  # its app.synth() would have raised on a finding
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    violations = [v for plugin in report["pluginReports"] for v in plugin.get("violations", [])]
    assert violations == []


def test_acknowledgments_are_exactly_the_reviewed_ones(app_mode: Synth, tracking_server_mode: Synth) -> None:
    bucket_objects = f"AwsSolutions-IAM5[Resource::<{app_mode.logical_id(app_mode.stack.mlflow.bucket)}.Arn>/*]"
    expected_app = {
        ("LitellmMlflow/Mlflow/AccessLogs", "AwsSolutions-S1"),
        ("LitellmMlflow/Mlflow/ExecutionRole", bucket_objects),
        ("LitellmMlflow/ConsumerRole", bucket_objects),
        ("LitellmMlflow/Consumer", "AwsSolutions-L1"),
        ("LitellmMlflow/Presign", "AwsSolutions-L1"),
        ("LitellmMlflow/Rollup", "AwsSolutions-L1"),
    }
    assert set(acknowledgments(app_mode)) == expected_app
    assert set(acknowledgments(tracking_server_mode)) == expected_app | {
        ("LitellmMlflow/ConsumerRole", "AwsSolutions-IAM5[Action::sagemaker-mlflow:*]"),
        ("LitellmMlflow/RollupRole", "AwsSolutions-IAM5[Action::sagemaker-mlflow:*]"),
    }


def test_every_acknowledgment_gives_a_specific_reason(app_mode: Synth, tracking_server_mode: Synth) -> None:
    for synth in (app_mode, tracking_server_mode):
        for (_, rule), reason in acknowledgments(synth).items():
            assert rule.startswith("AwsSolutions-")
            assert len(reason) >= 60, (rule, reason)


def test_an_unacknowledged_finding_fails_the_synth(tmp_path: Path) -> None:
    app, stack = build_app(SKIP_BUNDLING, outdir=str(tmp_path))
    s3.Bucket(stack, "UnreviewedBucket")  # no access logs, no TLS-only policy
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    failed = {
        (v["ruleName"], c["constructPath"])
        for plugin in report["pluginReports"]
        for v in plugin["violations"]
        for c in v["violatingConstructs"]
    }
    assert ("AwsSolutions-S1", "LitellmMlflow/UnreviewedBucket/Resource") in failed
    assert ("AwsSolutions-S10", "LitellmMlflow/UnreviewedBucket/Resource") in failed
    assert all(path.startswith("LitellmMlflow/UnreviewedBucket") for _, path in failed)
