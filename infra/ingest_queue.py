"""The SQS queue the LiteLLM callback publishes to, its dead-letter queue, and the publisher policy."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.settings import StackSettings

MAX_MESSAGE_BYTES = 1024 * 1024  # SQS's ceiling (1 MiB); the callback gzips bodies that would exceed it.
# SQS's maximum on both: an MLflow outage longer than max receives x visibility timeout moves events to the DLQ,
# and a backlog or DLQ gets two weeks (not SQS's default 4 days) to be noticed, fixed and redriven.
QUEUE_RETENTION = Duration.days(14)
DLQ_RETENTION = Duration.days(14)


class IngestQueue(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DLQ_RETENTION,
            max_message_size_bytes=MAX_MESSAGE_BYTES,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            max_message_size_bytes=MAX_MESSAGE_BYTES,
            retention_period=QUEUE_RETENTION,
            visibility_timeout=Duration.seconds(settings.visibility_timeout_seconds),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=settings.max_receive_count
            ),
        )
        # For the LiteLLM proxy's role: SendMessage also authorizes SendMessageBatch; nothing else.
        self.publisher_policy = iam.ManagedPolicy(
            self,
            "PublisherPolicy",
            description="Lets a LiteLLM proxy/SDK publish call events to the litellm-mlflow queue, and nothing else.",
            statements=[iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.queue.queue_arn])],
        )
