"""The three signals that mean events are not reaching MLflow: dead letters, a backlog, a failing consumer."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

PERIOD = Duration.minutes(5)  # SQS publishes its queue metrics every 5 minutes


@dataclass
class Alarms:
    dead_letters: cloudwatch.Alarm
    oldest_message_age: cloudwatch.Alarm
    consumer_errors: cloudwatch.Alarm


def build_alarms(
    scope: Construct,
    *,
    queue: sqs.IQueue,
    dead_letter_queue: sqs.IQueue,
    consumer: lambda_.IFunction,
    oldest_message_alarm_seconds: int,
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
    return Alarms(dead_letters=dead_letters, oldest_message_age=oldest, consumer_errors=errors)
