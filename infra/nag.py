"""cdk-nag (3.x) wiring: AwsSolutions checks on the whole app, acknowledgments that each name a rule and a reason.

cdk-nag 3 reports through CDK's policy-validation plugins, so `app.synth()` itself fails on any unacknowledged
finding; nothing downstream has to parse a report to notice.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def add_aws_solutions_checks(app: App) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one finding (`AwsSolutions-IAM5[Resource::...]` style ids name a single finding)."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))
