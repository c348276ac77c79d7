"""The whole deployment in one stack: MLflow target, queue, consumer, presign URL, alarms, dashboard, outputs.

Output keys are an interface: the `litellm-mlflow` CLI reads them by name, so they never change.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.alarm_topic import AlarmTopic
from infra.alarms import build_alarms
from infra.dashboard import build_dashboard, dashboard_url
from infra.functions import ARCHITECTURE, RUNTIME, build_functions
from infra.ingest_queue import IngestQueue
from infra.layer_bundling import layer_code
from infra.mlflow_target import MlflowTarget
from infra.settings import StackSettings
from litellm_mlflow.usage_metrics import TEAM_METRICS_ENV

CALLBACK_SETTING = "litellm_mlflow.callback.sqs_logger"


class LitellmMlflowStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings
        self.mlflow = MlflowTarget(self, "Mlflow", settings=settings)
        self.ingest = IngestQueue(self, "Ingest", settings=settings)
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=layer_code(),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="litellm_mlflow + mlflow-skinny + sagemaker-mlflow + aws-lambda-powertools (pinned)",
        )
        self.functions = build_functions(
            self,
            settings=settings,
            layer=self.layer,
            queue=self.ingest.queue,
            dead_letter_queue=self.ingest.dead_letter_queue,
            mlflow_arn=self.mlflow.arn,
        )
        self.mlflow.grant_logging(self.functions.consumer.role)
        self.mlflow.grant_presign(self.functions.presign.role)
        self.mlflow.grant_rollup(self.functions.rollup.role)
        self.alarms = build_alarms(
            self,
            queue=self.ingest.queue,
            dead_letter_queue=self.ingest.dead_letter_queue,
            consumer=self.functions.consumer,
            oldest_message_alarm_seconds=settings.oldest_message_alarm_seconds,
            monitoring=settings.monitoring,
            topic=self._monitoring(settings),
        )
        self.dashboard_name = f"{settings.stack_name}-{self.region}"
        self.dashboard = build_dashboard(
            self,
            name=self.dashboard_name,
            queue=self.ingest.queue,
            dead_letter_queue=self.ingest.dead_letter_queue,
            consumer=self.functions.consumer,
            alarms=self.alarms,
        )
        self._outputs()

    def _monitoring(self, settings: StackSettings) -> object:
        """The alarm topic, and the consumer's switch for per-team usage metrics."""
        self.functions.consumer.add_environment(TEAM_METRICS_ENV, str(settings.monitoring.team_metrics).lower())
        self.alarm_topic = AlarmTopic(self, "Alarms", settings=settings.monitoring)
        return self.alarm_topic.topic

    def _outputs(self) -> None:
        queue_url = self.ingest.queue.queue_url
        outputs = {
            "QueueUrl": (queue_url, "Where the LiteLLM callback publishes (LITELLM_MLFLOW_QUEUE_URL)"),
            "DeadLetterQueueUrl": (self.ingest.dead_letter_queue.queue_url, "Events that failed every retry"),
            "FunctionUrl": (self.functions.function_url.url, "Open (SigV4-signed) for a logged-in MLflow UI"),
            "MlflowArn": (self.mlflow.arn, "MLFLOW_TRACKING_URI for sagemaker-mlflow clients"),
            "MlflowKind": (self.mlflow.kind.value, "app | tracking-server"),
            "ArtifactBucket": (self.mlflow.bucket_name or "none", "The MLflow artifact store ('none' if unknown)"),
            "PublisherPolicyArn": (
                self.ingest.publisher_policy.managed_policy_arn,
                "Attach to the LiteLLM proxy's role: sqs:SendMessage on the queue only",
            ),
            "DashboardUrl": (dashboard_url(self.dashboard_name), "CloudWatch dashboard: pipeline health and LLM usage"),
            "AlarmTopicArn": (self.alarm_topic.topic.topic_arn, "SNS topic every alarm notifies (subscribe here)"),
            "LitellmConfig": (
                f"litellm_settings:\n  callbacks: {CALLBACK_SETTING}\nexport LITELLM_MLFLOW_QUEUE_URL={queue_url}",
                "Paste the first two lines into the litellm config, run the export line in its environment",
            ),
        }
        for key, (value, description) in outputs.items():
            CfnOutput(self, key, value=value, description=description)
