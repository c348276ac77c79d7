"""The alarms worth waking up for, all sent to one SNS topic.

Pipeline: dead letters, a backlog, a failing consumer. Usage (from the consumer's EMF metrics, names shared with it
through `litellm_mlflow.usage_metrics`): the error rate of any model group, the hourly spend (overall and per team
with a budget), and, if asked for, no calls at all for a while.

Model groups are not known at deploy time and new ones appear whenever the proxy's config changes, so the usage
alarms that cover every group are CloudWatch Metrics Insights alarms (SQL over the namespace): one alarm, with a
`GROUP BY ModelGroup` query, evaluates each group as its own contributor; metric math cannot (SEARCH expressions are
not allowed in alarms) and an alarm per group would have to be redeployed for each new group. The error rate is
`AVG(ErrorRate)` because the consumer publishes ErrorRate once per call (100 or 0): the average over a period is the
share of failed calls, weighted by calls. Insights alarms read the last three hours at most, which bounds the
no-calls window.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.settings import MonitoringSettings
from litellm_mlflow import usage_metrics as names

PERIOD = Duration.minutes(5)  # SQS publishes its queue metrics every 5 minutes
HOUR = Duration.hours(1)


def insights_query(function: str, metric: str, dimension: str, group_by: bool = False) -> str:
    """A Metrics Insights query over the consumer's usage metrics with exactly `dimension`."""
    query = f'SELECT {function}("{metric}") FROM SCHEMA("{names.NAMESPACE}", "{dimension}")'
    return f'{query} GROUP BY "{dimension}"' if group_by else query


def usage_metric(metric: str, dimension: str, value: str, statistic: str, period: Duration) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=names.NAMESPACE,
        metric_name=metric,
        dimensions_map={dimension: value},
        statistic=statistic,
        period=period,
    )


@dataclass
class Alarms:
    dead_letters: cloudwatch.Alarm
    oldest_message_age: cloudwatch.Alarm
    consumer_errors: cloudwatch.Alarm
    model_group_error_rate: cloudwatch.Alarm | None = None
    hourly_spend: cloudwatch.Alarm | None = None
    team_hourly_spend: dict[str, cloudwatch.Alarm] = field(default_factory=dict)
    no_calls: cloudwatch.Alarm | None = None

    def all(self) -> list[cloudwatch.Alarm]:
        optional = [self.model_group_error_rate, self.hourly_spend, *self.team_hourly_spend.values(), self.no_calls]
        return [self.dead_letters, self.oldest_message_age, self.consumer_errors, *filter(None, optional)]


def build_alarms(
    scope: Construct,
    *,
    queue: sqs.IQueue,
    dead_letter_queue: sqs.IQueue,
    consumer: lambda_.IFunction,
    oldest_message_alarm_seconds: int,
    monitoring: MonitoringSettings | None = None,
    topic: sns.ITopic | None = None,
) -> Alarms:
    dead_letters = dead_letter_queue.metric_approximate_number_of_messages_visible(
        period=PERIOD, statistic="Maximum"
    ).create_alarm(
        scope,
        "DeadLettersAlarm",
        alarm_description="LiteLLM call events reached the dead-letter queue: they were not written to MLflow.",
        threshold=1,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    oldest = queue.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum").create_alarm(
        scope,
        "OldestMessageAgeAlarm",
        alarm_description="The consumer is falling behind: the oldest queued event is older than the threshold.",
        threshold=oldest_message_alarm_seconds,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    errors = consumer.metric_errors(period=PERIOD, statistic="Sum").create_alarm(
        scope,
        "ConsumerErrorsAlarm",
        alarm_description="The consumer Lambda failed whole invocations (crash, timeout, init error).",
        threshold=1,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    alarms = Alarms(dead_letters=dead_letters, oldest_message_age=oldest, consumer_errors=errors)
    if monitoring is not None:
        _usage_alarms(scope, alarms, monitoring)
    if topic is not None:
        for alarm in alarms.all():
            alarm.add_alarm_action(actions.SnsAction(topic))
    return alarms


def _usage_alarms(scope: Construct, alarms: Alarms, settings: MonitoringSettings) -> None:
    if settings.error_rate_alarm_percent:
        periods = settings.error_rate_alarm_periods
        alarms.model_group_error_rate = cloudwatch.MathExpression(
            expression=insights_query("AVG", names.ERROR_RATE, names.MODEL_GROUP, group_by=True),
            label="Error rate (%) by model group",
            period=PERIOD,
        ).create_alarm(
            scope,
            "ModelGroupErrorRateAlarm",
            alarm_description=(
                f"A model group's share of failed LLM calls was over {settings.error_rate_alarm_percent}% for "
                f"{periods} x 5 minutes in a row (each model group is evaluated on its own)."
            ),
            threshold=settings.error_rate_alarm_percent,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
    if settings.hourly_budget_usd:
        alarms.hourly_spend = cloudwatch.MathExpression(
            expression=insights_query("SUM", names.COST, names.MODEL_GROUP),
            label="Cost (USD) per hour, all model groups",
            period=HOUR,
        ).create_alarm(
            scope,
            "HourlySpendAlarm",
            alarm_description=f"LLM spend (response_cost) was over ${settings.hourly_budget_usd:g} in an hour.",
            threshold=settings.hourly_budget_usd,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
    for team, budget in sorted(settings.team_hourly_budgets_usd.items()):
        team_key = hashlib.sha256(team.encode("utf-8")).hexdigest()[:10]  # stable id, whatever the name holds
        alarms.team_hourly_spend[team] = usage_metric(names.COST, names.TEAM, team, "Sum", HOUR).create_alarm(
            scope,
            f"TeamHourlySpendAlarm{team_key}",
            alarm_description=f"Team {team!r} spent over ${budget:g} on LLM calls in an hour.",
            threshold=budget,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
    if settings.no_calls_alarm_minutes:
        minutes = settings.no_calls_alarm_minutes
        alarms.no_calls = cloudwatch.MathExpression(
            expression=insights_query("SUM", names.CALLS, names.MODEL_GROUP),
            label="Calls stored, all model groups",
            period=Duration.minutes(minutes),
        ).create_alarm(
            scope,
            "NoCallsAlarm",
            alarm_description=f"No LLM call was stored for {minutes} minutes: is the proxy or its callback down?",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
