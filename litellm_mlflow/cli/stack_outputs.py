"""The deployed CloudFormation stack's outputs: where the CLI finds the function URL, the queue and the MLflow ARN,
so nobody copies them by hand."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

DEFAULT_STACK_NAME = "LitellmMlflow"

# The CfnOutput keys the CDK app defines.
QUEUE_URL = "QueueUrl"
DEAD_LETTER_QUEUE_URL = "DeadLetterQueueUrl"
FUNCTION_URL = "FunctionUrl"
MLFLOW_ARN = "MlflowArn"
MLFLOW_KIND = "MlflowKind"
ARTIFACT_BUCKET = "ArtifactBucket"
PUBLISHER_POLICY_ARN = "PublisherPolicyArn"
LITELLM_CONFIG = "LitellmConfig"
DASHBOARD_URL = "DashboardUrl"
ALARM_TOPIC_ARN = "AlarmTopicArn"


class StackNotFound(LookupError):
    """No stack of that name in that region."""


class StackOutputMissing(LookupError):
    """The stack exists but lacks an output (still deploying, failed, or an older version of the app)."""


@dataclass(frozen=True)
class StackOutputs:
    name: str
    region: str | None
    status: str
    outputs: Mapping[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        return self.outputs.get(key) or None

    def require(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            have = ", ".join(sorted(self.outputs)) or "none"
            raise StackOutputMissing(
                f"stack {self.name} ({self.region}, {self.status}) has no output {key!r} (outputs: {have}); "
                "redeploy with `cdk deploy` or wait for the deployment to finish"
            )
        return value


def read_stack_outputs(cloudformation: Any, stack_name: str = DEFAULT_STACK_NAME) -> StackOutputs:
    """Outputs of `stack_name` via DescribeStacks; StackNotFound when it does not exist in the client's region."""
    region = cloudformation.meta.region_name
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationError" and "does not exist" in str(error.get("Message", "")):
            raise StackNotFound(
                f"no CloudFormation stack named {stack_name!r} in {region}: deploy it (`cdk deploy`), "
                "or pass --stack / --region"
            ) from None
        raise
    if not stacks:
        raise StackNotFound(f"no CloudFormation stack named {stack_name!r} in {region}")
    stack = stacks[0]
    outputs = {item["OutputKey"]: item.get("OutputValue", "") for item in stack.get("Outputs", [])}
    return StackOutputs(name=stack["StackName"], region=region, status=stack.get("StackStatus", ""), outputs=outputs)
