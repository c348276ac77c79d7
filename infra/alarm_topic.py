"""One SNS topic every alarm notifies: encrypted with its own KMS key, TLS only, optional e-mail subscription.

An AWS-managed key (alias/aws/sns) cannot be used here: CloudWatch may only publish to an encrypted topic whose key
policy lets `cloudwatch.amazonaws.com` use the key, which only a customer-managed key allows (about $1 a month).
Chatbot/Slack, PagerDuty or any other target subscribes to the topic's ARN (a stack output).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.settings import MonitoringSettings


class AlarmTopic(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, settings: MonitoringSettings) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Key",
            description="litellm-mlflow: encrypts the alarm notifications topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
            )
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name="litellm-mlflow alarms",
            master_key=self.key,
            enforce_ssl=True,
        )
        if settings.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))
