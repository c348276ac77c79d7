"""The SageMaker MLflow the pipeline logs into, and the only IAM that may touch it.

Three ways to get one (see `StackSettings`): a serverless MLflow App (default: no idle cost), a tracking server
(sized, billed per hour), or an existing ARN. Whatever the source, the grants below are written against that single
ARN, so every policy in the stack names exactly one MLflow resource.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra.mlflow_arn import MlflowKind
from infra.nag import acknowledge
from infra.settings import StackSettings

# IAM actions per flavour, checked against the Service Authorization Reference (sagemaker, sagemaker-mlflow).
TRACKING_SERVER_LOG_ACTIONS = ("sagemaker-mlflow:*",)
APP_LOG_ACTIONS = ("sagemaker:CallMlflowAppApi", "sagemaker:DescribeMlflowApp")
TRACKING_SERVER_PRESIGN_ACTIONS = (
    "sagemaker:CreatePresignedMlflowTrackingServerUrl",
    "sagemaker:DescribeMlflowTrackingServer",
)
APP_PRESIGN_ACTIONS = ("sagemaker:CreatePresignedMlflowAppUrl", "sagemaker:DescribeMlflowApp")
# What a client needs to put trace data / artifacts straight into the bucket (multipart included).
ARTIFACT_WRITE_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload")
# What SageMaker's MLflow needs on its own artifact store.
ARTIFACT_STORE_OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")
ARTIFACT_STORE_BUCKET_ACTIONS = ("s3:ListBucket", "s3:GetBucketLocation")


class MlflowTarget(Construct):
    """Creates (or adopts) the MLflow target; exposes `arn`, `kind`, `bucket_name` and the two grants."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings) -> None:
        super().__init__(scope, construct_id)
        self.kind = settings.mlflow_kind
        self.bucket: s3.Bucket | None = None
        self.execution_role: iam.Role | None = None
        self.resource: sagemaker.CfnMlflowApp | sagemaker.CfnMlflowTrackingServer | None = None
        if settings.existing_mlflow is not None:
            self.arn = settings.existing_mlflow.arn
            self.bucket_name = settings.artifact_bucket_name
            self._object_arns = (
                [f"arn:{Aws.PARTITION}:s3:::{self.bucket_name}/*"] if self.bucket_name is not None else []
            )
            self._objects_finding = f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{self.bucket_name}/*]"
            return

        self.bucket = self._artifact_bucket()
        self.bucket_name = self.bucket.bucket_name
        self._object_arns = [self.bucket.arn_for_objects("*")]
        stack = Stack.of(self)
        logical_id = stack.resolve(stack.get_logical_id(self.bucket.node.default_child))
        self._objects_finding = f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/*]"
        role = self.execution_role = self._execution_role(self.bucket)
        artifact_uri = f"s3://{self.bucket.bucket_name}/mlflow"
        if self.kind is MlflowKind.APP:
            app = sagemaker.CfnMlflowApp(
                self,
                "App",
                name=settings.mlflow_name,
                artifact_store_uri=artifact_uri,
                role_arn=role.role_arn,
                model_registration_mode="AutoModelRegistrationDisabled",
            )
            self.arn = app.attr_arn
            self.resource = app
        else:
            server = sagemaker.CfnMlflowTrackingServer(
                self,
                "TrackingServer",
                tracking_server_name=settings.mlflow_name,
                artifact_store_uri=artifact_uri,
                role_arn=role.role_arn,
                tracking_server_size=settings.tracking_server_size,
                mlflow_version=settings.mlflow_version,
                automatic_model_registration=False,
            )
            self.arn = server.attr_tracking_server_arn
            self.resource = server
        # SageMaker checks the role's bucket access while creating the target: attach the policy first.
        self.resource.node.add_dependency(role)

    def _artifact_bucket(self) -> s3.Bucket:
        access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            access_logs,
            "AwsSolutions-S1",
            "This bucket is the server-access-log destination of the artifact bucket; logging it would recurse.",
        )
        return s3.Bucket(
            self,
            "Artifacts",
            encryption=s3.BucketEncryption.S3_MANAGED,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="artifacts/",
            # Trace data is the product: keep it when the stack goes away.
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _execution_role(self, bucket: s3.Bucket) -> iam.Role:
        role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="SageMaker MLflow reads and writes its artifact store, and nothing else.",
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=list(ARTIFACT_STORE_BUCKET_ACTIONS), resources=[bucket.bucket_arn])
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=list(ARTIFACT_STORE_OBJECT_ACTIONS), resources=self._object_arns)
        )
        acknowledge(
            role,
            self._objects_finding,
            "MLflow names artifact and trace objects at run time (experiment/run/trace ids), so object access "
            "is granted on every key of this one artifact bucket, and only there.",
        )
        return role

    def grant_logging(self, role: iam.IRole) -> None:
        """What the consumer needs: the MLflow data plane on this one ARN, and object writes to its bucket."""
        self._grant_data_plane(role)
        if self._object_arns:
            role.add_to_principal_policy(
                iam.PolicyStatement(actions=list(ARTIFACT_WRITE_ACTIONS), resources=self._object_arns)
            )
            acknowledge(
                role,
                self._objects_finding,
                "The MLflow client uploads trace data and artifacts under keys it derives from run and trace "
                "ids, so PutObject is granted on every key of this one artifact bucket (no read, no delete).",
            )

    def grant_rollup(self, role: iam.IRole) -> None:
        """What the rollup needs: the MLflow data plane on this one ARN (it reads trace infos and writes runs, never
        artifacts, so no bucket access)."""
        self._grant_data_plane(role)

    def _grant_data_plane(self, role: iam.IRole) -> None:
        if self.kind is MlflowKind.TRACKING_SERVER:
            role.add_to_principal_policy(
                iam.PolicyStatement(actions=list(TRACKING_SERVER_LOG_ACTIONS), resources=[self.arn])
            )
            acknowledge(
                role,
                "AwsSolutions-IAM5[Action::sagemaker-mlflow:*]",
                "The MLflow client calls a growing set of sagemaker-mlflow data-plane actions (runs, metrics, "
                "traces v3, trace search, logged models); the wildcard is on the action only and scoped to this one "
                "tracking server ARN.",
            )
        else:
            role.add_to_principal_policy(iam.PolicyStatement(actions=list(APP_LOG_ACTIONS), resources=[self.arn]))

    def grant_presign(self, role: iam.IRole) -> None:
        """What the presign function needs: create a UI link for this one ARN (and describe it, for `info`)."""
        actions = TRACKING_SERVER_PRESIGN_ACTIONS if self.kind is MlflowKind.TRACKING_SERVER else APP_PRESIGN_ACTIONS
        role.add_to_principal_policy(iam.PolicyStatement(actions=list(actions), resources=[self.arn]))
