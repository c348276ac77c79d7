"""The Lambda functions: the queue consumer, the presigned-URL function behind a function URL, and the scheduled
usage rollup (one MLflow run per model group and per team, from the stored traces).

Each gets its own role with no AWS-managed policy: only write access to its own log group plus the grants the
stack adds, so every permission it holds is visible in this app.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge
from infra.settings import StackSettings

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64
METRICS_NAMESPACE = "LitellmMlflow"
CONSUMER_SERVICE = "litellm-mlflow-consumer"
PRESIGN_SERVICE = "litellm-mlflow-presign"
ROLLUP_SERVICE = "litellm-mlflow-rollup"
# Hours close 15 minutes after their end (the rollup's grace); a pass every 10 minutes writes each within 25 and
# goes on where a pass that ran out of time stopped. A pass with nothing to do is three small requests.
ROLLUP_SCHEDULE = events.Schedule.rate(Duration.minutes(10))
ROLLUP_TIMEOUT = Duration.minutes(15)
RETENTION_BY_DAYS = {  # keys: infra.settings.LOG_RETENTION_DAYS
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    3653: logs.RetentionDays.TEN_YEARS,
}


def _python_function(
    scope: Construct,
    construct_id: str,
    *,
    source_dir: str,
    layer: lambda_.ILayerVersion,
    settings: StackSettings,
    timeout: Duration,
    memory_mb: int,
    environment: dict[str, str],
    description: str,
) -> lambda_.Function:
    log_group = logs.LogGroup(
        scope,
        f"{construct_id}Logs",
        retention=RETENTION_BY_DAYS[settings.log_retention_days],
        removal_policy=RemovalPolicy.DESTROY,
    )
    role = iam.Role(
        scope,
        f"{construct_id}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"{description}: its own log group plus the grants named in the stack.",
    )
    log_group.grant_write(role)
    function = lambda_.Function(
        scope,
        construct_id,
        description=description,
        runtime=RUNTIME,
        architecture=ARCHITECTURE,
        handler="handler.handler",
        code=lambda_.Code.from_asset(str(FUNCTIONS_DIR / source_dir), exclude=["__pycache__", "*.pyc"]),
        layers=[layer],
        role=role,
        log_group=log_group,
        timeout=timeout,
        memory_size=memory_mb,
        environment=environment,
    )
    acknowledge(
        function,
        "AwsSolutions-L1",
        "Pinned to python3.13 on purpose: the layer is built from cp313 wheels (pip --python-version 3.13) and "
        "the handlers are tested on 3.13; a newer runtime is an upgrade of the layer lock, not a drift.",
    )
    return function


@dataclass
class Functions:
    consumer: lambda_.Function
    presign: lambda_.Function
    function_url: lambda_.FunctionUrl
    rollup: lambda_.Function
    rollup_schedule: events.Rule


def build_functions(
    scope: Construct,
    *,
    settings: StackSettings,
    layer: lambda_.ILayerVersion,
    queue: sqs.IQueue,
    dead_letter_queue: sqs.IQueue,
    mlflow_arn: str,
) -> Functions:
    consumer = _python_function(
        scope,
        "Consumer",
        source_dir="consumer",
        layer=layer,
        settings=settings,
        timeout=Duration.seconds(settings.consumer_timeout_seconds),
        memory_mb=settings.consumer_memory_mb,
        description="litellm-mlflow consumer: SQS batches of LiteLLM call events into MLflow",
        environment={
            "MLFLOW_TRACKING_URI": mlflow_arn,
            "MLFLOW_EXPERIMENT_NAME": settings.experiment_name,
            "POWERTOOLS_SERVICE_NAME": CONSUMER_SERVICE,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            # No internet catalog lookups from Lambda: a priced write would otherwise stall on a timeout.
            "MLFLOW_MODEL_CATALOG_URI": "",
            # Records that can never be stored go straight here, with their reason (litellm_mlflow.sink.dead_letter).
            "LITELLM_MLFLOW_DLQ_URL": dead_letter_queue.queue_url,
        },
    )
    # SendMessage alone (it also authorizes SendMessageBatch), on that one queue: the DLQ is SQS-managed encrypted,
    # so no KMS grant is needed.
    consumer.add_to_role_policy(
        iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[dead_letter_queue.queue_arn])
    )
    consumer.add_event_source(
        event_sources.SqsEventSource(
            queue,
            batch_size=settings.batch_size,
            max_batching_window=Duration.seconds(settings.batching_window_seconds),
            report_batch_item_failures=True,
            max_concurrency=settings.max_concurrency,
        )
    )
    presign = _python_function(
        scope,
        "Presign",
        source_dir="presign",
        layer=layer,
        settings=settings,
        timeout=Duration.seconds(15),
        memory_mb=256,
        description="litellm-mlflow presign: redirects an IAM-signed caller to a presigned MLflow UI URL",
        environment={
            "MLFLOW_TRACKING_URI": mlflow_arn,
            "LITELLM_MLFLOW_URL_EXPIRES_SECONDS": str(settings.url_expires_seconds),
            "LITELLM_MLFLOW_SESSION_SECONDS": str(settings.session_seconds),
            "POWERTOOLS_SERVICE_NAME": PRESIGN_SERVICE,
        },
    )
    function_url = presign.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)
    rollup, schedule = build_rollup(scope, settings=settings, layer=layer, mlflow_arn=mlflow_arn)
    return Functions(
        consumer=consumer, presign=presign, function_url=function_url, rollup=rollup, rollup_schedule=schedule
    )


def build_rollup(
    scope: Construct, *, settings: StackSettings, layer: lambda_.ILayerVersion, mlflow_arn: str
) -> tuple[lambda_.Function, events.Rule]:
    """The usage rollup: one instance at a time (reserved concurrency 1), started by a schedule, no retries (the
    next scheduled pass is the retry)."""
    rollup = _python_function(
        scope,
        "Rollup",
        source_dir="rollup",
        layer=layer,
        settings=settings,
        timeout=ROLLUP_TIMEOUT,
        memory_mb=1024,
        description="litellm-mlflow rollup: closed hours of stored traces into one MLflow run per model group and team",
        environment={
            "MLFLOW_TRACKING_URI": mlflow_arn,
            "MLFLOW_EXPERIMENT_NAME": settings.experiment_name,
            "POWERTOOLS_SERVICE_NAME": ROLLUP_SERVICE,
            "MLFLOW_MODEL_CATALOG_URI": "",
        },
    )
    cfn = rollup.node.default_child
    assert isinstance(cfn, lambda_.CfnFunction)
    cfn.reserved_concurrent_executions = 1
    rollup.configure_async_invoke(retry_attempts=0, max_event_age=Duration.minutes(10))
    rule = events.Rule(
        scope,
        "RollupSchedule",
        schedule=ROLLUP_SCHEDULE,
        description="Starts a usage rollup pass (litellm-mlflow)",
        targets=[targets.LambdaFunction(rollup, retry_attempts=0)],
    )
    return rollup, rule
