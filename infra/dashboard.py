"""The monitoring dashboard: pipeline health on top, LLM usage below, alarm states at the end.

Usage graphs use SEARCH expressions over the consumer's EMF metrics (names from `litellm_mlflow.usage_metrics`), so
every model group and team appears as it starts sending, with no redeploy.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.alarms import Alarms
from litellm_mlflow import usage_metrics as names

PERIOD = Duration.minutes(5)
HOUR = Duration.hours(1)
WIDTH = 8  # three graphs a row (the grid is 24 wide)


def search(metric: str, dimension: str, statistic: str, period: Duration, label: str = "") -> cloudwatch.MathExpression:
    """One line per value of `dimension` (every model group or team), found by metric name at view time."""
    seconds = int(period.to_seconds())
    expression = f"SEARCH('{{{names.NAMESPACE},{dimension}}} MetricName=\"{metric}\"', '{statistic}', {seconds})"
    return cloudwatch.MathExpression(expression=expression, label=label, period=period)


def pipeline_metric(metric: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=names.NAMESPACE,
        metric_name=metric,
        dimensions_map={names.SERVICE: names.CONSUMER_SERVICE},
        statistic="Sum",
        period=PERIOD,
    )


def graph(title: str, left: list[cloudwatch.IMetric], **options: object) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(title=title, left=left, width=WIDTH, height=6, **options)


def build_dashboard(
    scope: Construct,
    *,
    name: str,
    queue: sqs.IQueue,
    dead_letter_queue: sqs.IQueue,
    consumer: lambda_.IFunction,
    alarms: Alarms,
) -> cloudwatch.Dashboard:
    dashboard = cloudwatch.Dashboard(scope, "Dashboard", dashboard_name=name, default_interval=Duration.hours(3))
    dashboard.add_widgets(cloudwatch.TextWidget(markdown="## Pipeline health", width=24, height=1))
    dashboard.add_widgets(
        graph(
            "Queue: depth and oldest event age (s)",
            [queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum", label="Depth")],
            right=[queue.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum", label="Age")],
        ),
        graph(
            "Dead-letter queue: events never written",
            [dead_letter_queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum")],
        ),
        graph(
            "Events written / failed (retried by SQS)",
            [pipeline_metric(names.EVENTS_WRITTEN), pipeline_metric(names.EVENTS_FAILED)],
        ),
    )
    dashboard.add_widgets(
        graph(
            "Consumer: errors and throttles",
            [consumer.metric_errors(period=PERIOD, statistic="Sum"), consumer.metric_throttles(period=PERIOD)],
        ),
        graph(
            "Consumer: duration (ms)",
            [
                consumer.metric_duration(period=PERIOD, statistic="p50", label="p50"),
                consumer.metric_duration(period=PERIOD, statistic="p99", label="p99"),
                consumer.metric_duration(period=PERIOD, statistic="Maximum", label="max"),
            ],
        ),
        graph(
            "Consumer: invocations and batch size",
            [consumer.metric_invocations(period=PERIOD, statistic="Sum")],
            right=[
                cloudwatch.Metric(
                    namespace=names.NAMESPACE,
                    metric_name=names.BATCH_SIZE,
                    dimensions_map={names.SERVICE: names.CONSUMER_SERVICE},
                    statistic="Average",
                    period=PERIOD,
                    label="Average batch size",
                )
            ],
        ),
    )
    dashboard.add_widgets(cloudwatch.TextWidget(markdown="## LLM usage (calls stored in MLflow)", width=24, height=1))
    dashboard.add_widgets(
        graph(
            "Calls (left) and failed calls (right) by model group",
            [search(names.CALLS, names.MODEL_GROUP, "Sum", PERIOD)],
            right=[search(names.ERRORS, names.MODEL_GROUP, "Sum", PERIOD)],
        ),
        graph(
            "Error rate (%) by model group",
            [search(names.ERROR_RATE, names.MODEL_GROUP, "Average", PERIOD)],
            left_y_axis=cloudwatch.YAxisProps(min=0, max=100),
        ),
        graph(
            "Latency (ms) p50 / p95 / p99 by model group",
            [
                search(
                    names.LATENCY, names.MODEL_GROUP, stat, PERIOD, label=f"${{PROP('Dim.{names.MODEL_GROUP}')}} {stat}"
                )
                for stat in ("p50", "p95", "p99")
            ],
        ),
    )
    dashboard.add_widgets(
        graph(
            "Tokens by model group (input / output)",
            [search(names.INPUT_TOKENS, names.MODEL_GROUP, "Sum", PERIOD)],
            right=[search(names.OUTPUT_TOKENS, names.MODEL_GROUP, "Sum", PERIOD)],
        ),
        graph("Cost (USD) per hour by model group", [search(names.COST, names.MODEL_GROUP, "Sum", HOUR)]),
        graph(
            "Cost (USD, left) and calls (right) per hour by team",
            [search(names.COST, names.TEAM, "Sum", HOUR)],
            right=[search(names.CALLS, names.TEAM, "Sum", HOUR)],
        ),
    )
    dashboard.add_widgets(
        cloudwatch.AlarmStatusWidget(title="Alarms", alarms=alarms.all(), width=24, height=3),
    )
    return dashboard


def dashboard_url(name: str) -> str:
    return (
        f"https://{Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region={Aws.REGION}#dashboards/dashboard/{name}"
    )
