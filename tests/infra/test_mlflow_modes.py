"""The three ways to get an MLflow target, and the exact IAM each one produces."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match

from infra.app import build_app
from infra.mlflow_arn import InvalidMlflowArnError
from infra.synth import main as synth_main
from tests.infra.conftest import EXISTING_APP_ARN, EXISTING_SERVER_ARN, SKIP_BUNDLING, Synth, get_att

SQS_CONSUME = sorted(
    [
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:ReceiveMessage",
    ]
)
LOG_WRITE = ["logs:CreateLogStream", "logs:PutLogEvents"]
OBJECT_WRITE = ["s3:AbortMultipartUpload", "s3:PutObject"]


def allow(actions: list[str], resource: Any) -> dict[str, Any]:
    return {"Action": sorted(actions), "Effect": "Allow", "Resource": resource}


def created_bucket_objects(synth: Synth) -> dict[str, Any]:
    return {"Fn::Join": ["", [get_att(synth.logical_id(synth.stack.mlflow.bucket)), "/*"]]}


def common_consumer_statements(synth: Synth) -> list[dict[str, Any]]:
    stack = synth.stack
    return [
        allow(LOG_WRITE, get_att(synth.logical_id(stack.node.find_child("ConsumerLogs")))),
        allow(["sqs:SendMessage"], get_att(synth.logical_id(stack.ingest.dead_letter_queue))),
        allow(SQS_CONSUME, get_att(synth.logical_id(stack.ingest.queue))),
    ]


# --- default: a serverless MLflow App --------------------------------------------------------------------------


def test_app_mode_creates_an_mlflow_app_on_its_own_bucket(app_mode: Synth) -> None:
    template, stack = app_mode.template, app_mode.stack
    template.resource_count_is("AWS::SageMaker::MlflowApp", 1)
    template.resource_count_is("AWS::SageMaker::MlflowTrackingServer", 0)
    role_id = app_mode.logical_id(stack.mlflow.execution_role)
    template.has_resource(
        "AWS::SageMaker::MlflowApp",
        {
            "Properties": {
                "Name": "litellm-mlflow",
                "ArtifactStoreUri": {
                    "Fn::Join": ["", ["s3://", {"Ref": app_mode.logical_id(stack.mlflow.bucket)}, "/mlflow"]]
                },
                "RoleArn": get_att(role_id),
                "ModelRegistrationMode": "AutoModelRegistrationDisabled",
            },
            # The role's policy must exist before SageMaker validates bucket access.
            "DependsOn": Match.array_with([Match.string_like_regexp("^MlflowExecutionRoleDefaultPolicy")]),
        },
    )
    assert app_mode.raw["Outputs"]["MlflowArn"]["Value"] == get_att(app_mode.logical_id(stack.mlflow.resource))


def test_artifact_bucket_is_encrypted_versioned_private_tls_only_and_logged(app_mode: Synth) -> None:
    stack = app_mode.stack
    bucket_id = app_mode.logical_id(stack.mlflow.bucket)
    bucket = app_mode.raw["Resources"][bucket_id]
    props = bucket["Properties"]
    assert props["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["LoggingConfiguration"]["DestinationBucketName"]["Ref"].startswith("MlflowAccessLogs")
    assert bucket["DeletionPolicy"] == "Retain"
    tls_denied = [
        p["Properties"]["Bucket"]
        for p in app_mode.resources("AWS::S3::BucketPolicy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert {"Ref": bucket_id} in tls_denied
    assert len(tls_denied) == 2  # the access-log bucket too
    log_delivery = [
        s
        for p in app_mode.resources("AWS::S3::BucketPolicy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Principal") == {"Service": "logging.s3.amazonaws.com"}
    ]
    assert [(s["Action"], s["Condition"]["ArnLike"]["aws:SourceArn"]) for s in log_delivery] == [
        ("s3:PutObject", get_att(bucket_id))
    ]


def test_sagemaker_execution_role_is_scoped_to_the_bucket(app_mode: Synth) -> None:
    stack = app_mode.stack
    role = app_mode.raw["Resources"][app_mode.logical_id(stack.mlflow.execution_role)]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}}
    ]
    bucket_arn = get_att(app_mode.logical_id(stack.mlflow.bucket))
    assert app_mode.role_statements(stack.mlflow.execution_role) == [
        allow(["s3:GetBucketLocation", "s3:ListBucket"], bucket_arn),
        allow(
            ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
            created_bucket_objects(app_mode),
        ),
    ]


def test_app_mode_iam(app_mode: Synth) -> None:
    stack = app_mode.stack
    app_arn = get_att(app_mode.logical_id(stack.mlflow.resource))
    assert app_mode.role_statements(stack.functions.consumer.role) == [
        *common_consumer_statements(app_mode),
        allow(["sagemaker:CallMlflowAppApi", "sagemaker:DescribeMlflowApp"], app_arn),
        allow(OBJECT_WRITE, created_bucket_objects(app_mode)),
    ]
    assert app_mode.role_statements(stack.functions.presign.role) == [
        allow(LOG_WRITE, get_att(app_mode.logical_id(stack.node.find_child("PresignLogs")))),
        allow(["sagemaker:CreatePresignedMlflowAppUrl", "sagemaker:DescribeMlflowApp"], app_arn),
    ]


# --- -c mlflow=tracking-server ---------------------------------------------------------------------------------


def test_tracking_server_mode_creates_a_small_mlflow_3_server(tracking_server_mode: Synth) -> None:
    template, stack = tracking_server_mode.template, tracking_server_mode.stack
    template.resource_count_is("AWS::SageMaker::MlflowTrackingServer", 1)
    template.resource_count_is("AWS::SageMaker::MlflowApp", 0)
    template.has_resource_properties(
        "AWS::SageMaker::MlflowTrackingServer",
        {
            "TrackingServerName": "litellm-mlflow",
            "TrackingServerSize": "Small",
            "MlflowVersion": "3.0",
            "AutomaticModelRegistration": False,
            "RoleArn": get_att(tracking_server_mode.logical_id(stack.mlflow.execution_role)),
        },
    )
    outputs = tracking_server_mode.raw["Outputs"]
    server_id = tracking_server_mode.logical_id(stack.mlflow.resource)
    assert outputs["MlflowArn"]["Value"] == get_att(server_id, "TrackingServerArn")
    assert outputs["MlflowKind"]["Value"] == "tracking-server"


def test_tracking_server_mode_iam(tracking_server_mode: Synth) -> None:
    synth, stack = tracking_server_mode, tracking_server_mode.stack
    server_arn = get_att(synth.logical_id(stack.mlflow.resource), "TrackingServerArn")
    assert synth.role_statements(stack.functions.consumer.role) == [
        *common_consumer_statements(synth),
        allow(["sagemaker-mlflow:*"], server_arn),
        allow(OBJECT_WRITE, created_bucket_objects(synth)),
    ]
    assert synth.role_statements(stack.functions.presign.role) == [
        allow(LOG_WRITE, get_att(synth.logical_id(stack.node.find_child("PresignLogs")))),
        allow(
            ["sagemaker:CreatePresignedMlflowTrackingServerUrl", "sagemaker:DescribeMlflowTrackingServer"], server_arn
        ),
    ]


# --- -c mlflow_arn=<existing> ----------------------------------------------------------------------------------


def test_existing_server_creates_no_target_and_grants_on_that_arn(existing_server_mode: Synth) -> None:
    synth, stack = existing_server_mode, existing_server_mode.stack
    assert stack.stack_name == "LitellmMlflowProd"
    for resource_type in ("AWS::SageMaker::MlflowApp", "AWS::SageMaker::MlflowTrackingServer", "AWS::S3::Bucket"):
        synth.template.resource_count_is(resource_type, 0)
    assert synth.role_statements(stack.functions.consumer.role) == [
        *common_consumer_statements(synth),
        allow(["sagemaker-mlflow:*"], EXISTING_SERVER_ARN),
        allow(
            OBJECT_WRITE,
            {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::team-mlflow-artifacts/*"]]},
        ),
    ]
    assert synth.role_statements(stack.functions.presign.role)[1] == allow(
        ["sagemaker:CreatePresignedMlflowTrackingServerUrl", "sagemaker:DescribeMlflowTrackingServer"],
        EXISTING_SERVER_ARN,
    )
    outputs = {k: v["Value"] for k, v in synth.raw["Outputs"].items()}
    assert (outputs["MlflowArn"], outputs["MlflowKind"], outputs["ArtifactBucket"]) == (
        EXISTING_SERVER_ARN,
        "tracking-server",
        "team-mlflow-artifacts",
    )


def test_context_overrides_reach_the_event_source_queue_and_functions(existing_server_mode: Synth) -> None:
    synth, stack = existing_server_mode, existing_server_mode.stack
    synth.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {"BatchSize": 500, "MaximumBatchingWindowInSeconds": 20, "ScalingConfig": {"MaximumConcurrency": 10}},
    )
    queue = synth.raw["Resources"][synth.logical_id(stack.ingest.queue)]["Properties"]
    assert queue["VisibilityTimeout"] == 6 * 60 + 20
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 3
    consumer = synth.raw["Resources"][synth.logical_id(stack.functions.consumer)]["Properties"]
    assert consumer["Timeout"] == 60
    assert consumer["Environment"]["Variables"]["MLFLOW_EXPERIMENT_NAME"] == "prod-llm-calls"
    assert consumer["Environment"]["Variables"]["MLFLOW_TRACKING_URI"] == EXISTING_SERVER_ARN
    presign_env = synth.raw["Resources"][synth.logical_id(stack.functions.presign)]["Properties"]["Environment"]
    assert presign_env["Variables"]["LITELLM_MLFLOW_URL_EXPIRES_SECONDS"] == "60"
    assert presign_env["Variables"]["LITELLM_MLFLOW_SESSION_SECONDS"] == "3600"


def test_existing_app_without_a_bucket_gets_no_s3_access(existing_app_mode: Synth) -> None:
    synth, stack = existing_app_mode, existing_app_mode.stack
    synth.template.resource_count_is("AWS::SageMaker::MlflowApp", 0)
    assert synth.role_statements(stack.functions.consumer.role) == [
        *common_consumer_statements(synth),
        allow(["sagemaker:CallMlflowAppApi", "sagemaker:DescribeMlflowApp"], EXISTING_APP_ARN),
    ]
    assert synth.role_statements(stack.functions.presign.role)[1] == allow(
        ["sagemaker:CreatePresignedMlflowAppUrl", "sagemaker:DescribeMlflowApp"], EXISTING_APP_ARN
    )
    outputs = {k: v["Value"] for k, v in synth.raw["Outputs"].items()}
    assert (outputs["MlflowArn"], outputs["MlflowKind"], outputs["ArtifactBucket"]) == (EXISTING_APP_ARN, "app", "none")


def test_a_bad_arn_stops_the_app_before_any_resource(tmp_path: Any) -> None:
    with pytest.raises(InvalidMlflowArnError, match="not a SageMaker MLflow ARN"):
        build_app({**SKIP_BUNDLING, "mlflow_arn": "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/x"})


def test_make_synth_reports_a_bad_arn_clearly(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    code = synth_main(["-c", "mlflow_arn=arn:aws:s3:::my-bucket", "--outdir", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    assert "synth failed: mlflow_arn 'arn:aws:s3:::my-bucket' is not a SageMaker MLflow ARN" in err
