"""The default stack (MLflow App mode): queue, functions, event source, function URL, alarms, outputs."""

from __future__ import annotations

from aws_cdk.assertions import Match

from infra.layer_bundling import layer_source_hash
from litellm_mlflow.sink.dead_letter import DLQ_URL_ENV
from tests.infra.conftest import Synth, get_att

MIB = 1024 * 1024


def test_queue_and_dead_letter_queue(app_mode: Synth) -> None:
    settings = app_mode.stack.settings
    dlq_id = app_mode.logical_id(app_mode.stack.ingest.dead_letter_queue)
    app_mode.template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "SqsManagedSseEnabled": True,
            "MaximumMessageSize": MIB,
            "MessageRetentionPeriod": 14 * 24 * 3600,  # SQS's maximum, not its 4-day default
            "VisibilityTimeout": 6 * settings.consumer_timeout_seconds + settings.batching_window_seconds,
            "RedrivePolicy": {"deadLetterTargetArn": get_att(dlq_id), "maxReceiveCount": 5},
        },
    )
    dlq = app_mode.raw["Resources"][dlq_id]["Properties"]
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert dlq["SqsManagedSseEnabled"] is True
    assert app_mode.stack.settings.visibility_timeout_seconds == 725


def test_both_queues_refuse_plain_http(app_mode: Synth) -> None:
    queue_ids = {app_mode.logical_id(q) for q in (app_mode.stack.ingest.queue, app_mode.stack.ingest.dead_letter_queue)}
    denied = set()
    for policy in app_mode.resources("AWS::SQS::QueuePolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}:
                denied.update(q["Ref"] for q in policy["Properties"]["Queues"])
    assert denied == queue_ids


def test_consumer_function(app_mode: Synth) -> None:
    stack = app_mode.stack
    app_mode.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.13",
            "Architectures": ["arm64"],
            "Handler": "handler.handler",
            "Timeout": stack.settings.consumer_timeout_seconds,
            "MemorySize": stack.settings.consumer_memory_mb,
            "Layers": [{"Ref": app_mode.logical_id(stack.layer)}],
            "Role": get_att(app_mode.logical_id(stack.functions.consumer.role)),
            "LoggingConfig": {"LogGroup": Match.any_value()},
            "Environment": {
                "Variables": {
                    "MLFLOW_TRACKING_URI": get_att(app_mode.logical_id(stack.mlflow.resource)),
                    "MLFLOW_EXPERIMENT_NAME": "litellm-monitoring",
                    "POWERTOOLS_SERVICE_NAME": "litellm-mlflow-consumer",
                    "POWERTOOLS_METRICS_NAMESPACE": "LitellmMlflow",
                    "MLFLOW_MODEL_CATALOG_URI": "",
                    DLQ_URL_ENV: {"Ref": app_mode.logical_id(stack.ingest.dead_letter_queue)},
                }
            },
        },
    )


def test_consumer_may_send_to_the_dead_letter_queue_and_nowhere_else(app_mode: Synth) -> None:
    stack = app_mode.stack
    statements = app_mode.role_statements(stack.functions.consumer.role)
    sends = [s for s in statements if "sqs:SendMessage" in s["Action"]]
    assert sends == [
        {
            "Action": ["sqs:SendMessage"],
            "Effect": "Allow",
            "Resource": get_att(app_mode.logical_id(stack.ingest.dead_letter_queue)),
        }
    ]


def test_presign_function_and_its_iam_function_url(app_mode: Synth) -> None:
    stack = app_mode.stack
    presign_id = app_mode.logical_id(stack.functions.presign)
    presign = app_mode.raw["Resources"][presign_id]["Properties"]
    assert (presign["Runtime"], presign["Architectures"], presign["Handler"]) == (
        "python3.13",
        ["arm64"],
        "handler.handler",
    )
    assert presign["Layers"] == [{"Ref": app_mode.logical_id(stack.layer)}]
    assert presign["Environment"]["Variables"] == {
        "MLFLOW_TRACKING_URI": get_att(app_mode.logical_id(stack.mlflow.resource)),
        "LITELLM_MLFLOW_URL_EXPIRES_SECONDS": "300",
        "LITELLM_MLFLOW_SESSION_SECONDS": "43200",
        "POWERTOOLS_SERVICE_NAME": "litellm-mlflow-presign",
    }
    urls = app_mode.resources("AWS::Lambda::Url")
    assert [u["Properties"] for u in urls.values()] == [
        {"AuthType": "AWS_IAM", "TargetFunctionArn": get_att(presign_id)}
    ]


def test_layer_is_arm64_python313_and_hashed_from_its_inputs(app_mode: Synth) -> None:
    app_mode.template.has_resource_properties(
        "AWS::Lambda::LayerVersion",
        {"CompatibleRuntimes": ["python3.13"], "CompatibleArchitectures": ["arm64"]},
    )
    assert len(layer_source_hash()) == 64


def test_event_source_mapping_batches_and_reports_item_failures(app_mode: Synth) -> None:
    stack = app_mode.stack
    app_mode.template.resource_count_is("AWS::Lambda::EventSourceMapping", 1)
    app_mode.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": get_att(app_mode.logical_id(stack.ingest.queue)),
            "FunctionName": {"Ref": app_mode.logical_id(stack.functions.consumer)},
            "BatchSize": 50,
            "MaximumBatchingWindowInSeconds": 5,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": 5},
        },
    )


def test_log_groups_have_retention(app_mode: Synth) -> None:
    groups = app_mode.resources("AWS::Logs::LogGroup")
    assert len(groups) == 3  # consumer, presign, rollup
    assert {g["Properties"]["RetentionInDays"] for g in groups.values()} == {30}


def test_alarms(app_mode: Synth) -> None:
    stack = app_mode.stack
    alarms = {
        a["Properties"]["MetricName"]: a["Properties"]
        for a in app_mode.resources("AWS::CloudWatch::Alarm").values()
        if "MetricName" in a["Properties"]  # the usage alarms are Metrics Insights queries: test_monitoring.py
    }
    assert set(alarms) == {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage", "Errors"}
    topic = {"Ref": app_mode.logical_id(stack.alarm_topic.topic)}
    assert all(alarm["AlarmActions"] == [topic] for alarm in alarms.values())

    dlq = alarms["ApproximateNumberOfMessagesVisible"]
    assert (dlq["Namespace"], dlq["Threshold"], dlq["ComparisonOperator"]) == (
        "AWS/SQS",
        1,
        "GreaterThanOrEqualToThreshold",
    )
    assert dlq["Dimensions"] == [
        {"Name": "QueueName", "Value": get_att(app_mode.logical_id(stack.ingest.dead_letter_queue), "QueueName")}
    ]
    age = alarms["ApproximateAgeOfOldestMessage"]
    assert (age["Threshold"], age["ComparisonOperator"]) == (900, "GreaterThanThreshold")
    assert age["Dimensions"] == [
        {"Name": "QueueName", "Value": get_att(app_mode.logical_id(stack.ingest.queue), "QueueName")}
    ]
    errors = alarms["Errors"]
    assert (errors["Namespace"], errors["Statistic"], errors["Threshold"]) == ("AWS/Lambda", "Sum", 1)
    assert errors["Dimensions"] == [
        {"Name": "FunctionName", "Value": {"Ref": app_mode.logical_id(stack.functions.consumer)}}
    ]
    assert {a["TreatMissingData"] for a in alarms.values()} == {"notBreaching"}


def test_publisher_policy_allows_only_send_message_on_the_queue(app_mode: Synth) -> None:
    policies = app_mode.resources("AWS::IAM::ManagedPolicy")
    assert len(policies) == 1
    (policy,) = policies.values()
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {
            "Action": "sqs:SendMessage",
            "Effect": "Allow",
            "Resource": get_att(app_mode.logical_id(app_mode.stack.ingest.queue)),
        }
    ]
    assert "Roles" not in policy["Properties"]  # attached by the user to the LiteLLM proxy's role


def test_outputs(app_mode: Synth) -> None:
    stack = app_mode.stack
    outputs = app_mode.raw["Outputs"]
    assert set(outputs) >= {
        "QueueUrl",
        "DeadLetterQueueUrl",
        "FunctionUrl",
        "MlflowArn",
        "MlflowKind",
        "ArtifactBucket",
        "PublisherPolicyArn",
        "LitellmConfig",
    }
    assert outputs["QueueUrl"]["Value"] == {"Ref": app_mode.logical_id(stack.ingest.queue)}
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": app_mode.logical_id(stack.ingest.dead_letter_queue)}
    url_id = next(iter(app_mode.resources("AWS::Lambda::Url")))
    assert outputs["FunctionUrl"]["Value"] == get_att(url_id, "FunctionUrl")
    assert outputs["MlflowKind"]["Value"] == "app"
    assert outputs["ArtifactBucket"]["Value"] == {"Ref": app_mode.logical_id(stack.mlflow.bucket)}
    assert outputs["PublisherPolicyArn"]["Value"] == {"Ref": app_mode.logical_id(stack.ingest.publisher_policy)}
    config = outputs["LitellmConfig"]["Value"]["Fn::Join"][1]
    assert config == [
        "litellm_settings:\n  callbacks: litellm_mlflow.callback.sqs_logger\nexport LITELLM_MLFLOW_QUEUE_URL=",
        {"Ref": app_mode.logical_id(stack.ingest.queue)},
    ]


def test_no_policy_in_the_stack_grants_on_every_resource(app_mode: Synth, tracking_server_mode: Synth) -> None:
    for synth in (app_mode, tracking_server_mode):
        for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for policy in synth.resources(kind).values():
                for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                    resources = (
                        statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                    )
                    assert "*" not in resources, statement


def test_lambda_roles_carry_no_aws_managed_policy(app_mode: Synth) -> None:
    for role in app_mode.resources("AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"]


def test_rollup_function_runs_alone_on_a_schedule_with_mlflow_access_only(
    app_mode: Synth, tracking_server_mode: Synth
) -> None:
    stack = app_mode.stack
    rollup_id = app_mode.logical_id(stack.functions.rollup)
    app_mode.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.13",
            "Architectures": ["arm64"],
            "Handler": "handler.handler",
            "Timeout": 900,
            "ReservedConcurrentExecutions": 1,
            "Layers": [{"Ref": app_mode.logical_id(stack.layer)}],
            "Role": get_att(app_mode.logical_id(stack.functions.rollup.role)),
            "Environment": {
                "Variables": {
                    "MLFLOW_TRACKING_URI": get_att(app_mode.logical_id(stack.mlflow.resource)),
                    "MLFLOW_EXPERIMENT_NAME": "litellm-monitoring",
                    "POWERTOOLS_SERVICE_NAME": "litellm-mlflow-rollup",
                    "MLFLOW_MODEL_CATALOG_URI": "",
                }
            },
        },
    )
    app_mode.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "rate(10 minutes)",
            "State": "ENABLED",
            "Targets": [Match.object_like({"Arn": get_att(rollup_id), "RetryPolicy": {"MaximumRetryAttempts": 0}})],
        },
    )
    app_mode.template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig", {"FunctionName": {"Ref": rollup_id}, "MaximumRetryAttempts": 0}
    )
    mlflow_arn = get_att(app_mode.logical_id(stack.mlflow.resource))
    log_group_writes = {"logs:CreateLogStream", "logs:PutLogEvents"}
    statements = [
        s for s in app_mode.role_statements(stack.functions.rollup.role) if set(s["Action"]) - log_group_writes
    ]
    assert statements == [
        {
            "Action": ["sagemaker:CallMlflowAppApi", "sagemaker:DescribeMlflowApp"],
            "Effect": "Allow",
            "Resource": mlflow_arn,
        }
    ]
    server = tracking_server_mode.stack
    server_statements = [
        s
        for s in tracking_server_mode.role_statements(server.functions.rollup.role)
        if set(s["Action"]) - log_group_writes
    ]
    assert [s["Action"] for s in server_statements] == [["sagemaker-mlflow:*"]]
    assert server_statements[0]["Resource"] == get_att(
        tracking_server_mode.logical_id(server.mlflow.resource), "TrackingServerArn"
    )
