"""Shared fixtures: a real MLflow server and a moto SQS endpoint on 127.0.0.1, fake AWS credentials, no internet."""

from __future__ import annotations

import os

# Before anything imports litellm or mlflow: no cost-map download, no model-catalog lookup, fake AWS identity.
os.environ.update(
    {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "MLFLOW_MODEL_CATALOG_URI": "",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
)
os.environ.pop("AWS_PROFILE", None)

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import boto3

# LiteLLM points TIKTOKEN_CACHE_DIR at its bundled tokenizers when this module is first imported, which happens lazily
# inside the first test that counts tokens; the environment restore below would then drop it, and a later test's
# first o200k (gpt-4o) count would try to download the encoding. Imported here, it is part of every snapshot.
import litellm.litellm_core_utils.default_encoding  # noqa: F401
import pytest
from botocore.stub import Stubber

from litellm_mlflow.local.mlflow_versions import selected_versions, server_python
from litellm_mlflow.local.servers import MlflowServer, SqsServer

# LiteLLM payload capture, Lambda SQS records and the real consumer handler, for every test directory.
pytest_plugins = ["tests.support.litellm_events"]


def _restore(saved: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True, scope="module")
def _module_environment() -> Iterator[None]:
    """What a module's fixtures put in os.environ (the local stack's consumer env, the demo's quiet Powertools
    settings) ends with the module, so no later test runs under another module's settings. Per module, not per
    test: a module's long-lived stack keeps the client defaults its sink set on first use (as a Lambda does)."""
    saved = dict(os.environ)
    yield
    _restore(saved)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One real `mlflow server` (sqlite) for the session; tests use their own experiments."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session", params=selected_versions(), ids=lambda version: f"mlflow-{version}")
def versioned_mlflow_server(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[MlflowServer]:
    """One real `mlflow server` per version SageMaker runs (LITELLM_MLFLOW_TEST_MLFLOW_VERSIONS picks), one at a time:
    pytest groups the tests by version and stops each server before the next starts."""
    version = request.param
    server = MlflowServer(tmp_path_factory.mktemp(f"mlflow-{version}"), python=server_python(version))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sqs_server() -> Iterator[SqsServer]:
    server = SqsServer()
    server.start()
    yield server
    server.stop()


@dataclass
class Queue:
    url: str
    dlq_url: str
    endpoint: str
    client: object

    def receive_all(self, queue_url: str | None = None, max_empty_polls: int = 2) -> list[dict]:
        """Drain the queue (messages stay invisible afterwards, i.e. consumed)."""
        out: list[dict] = []
        empty = 0
        while empty < max_empty_polls:
            resp = self.client.receive_message(
                QueueUrl=queue_url or self.url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
                WaitTimeSeconds=0,
            )
            batch = resp.get("Messages", [])
            if not batch:
                empty += 1
                continue
            empty = 0
            out.extend(batch)
        return out


@pytest.fixture
def sqs_queue(sqs_server: SqsServer, monkeypatch: pytest.MonkeyPatch) -> Queue:
    """A fresh queue (and its DLQ after 3 receives) on the local SQS; the callback's env points at it."""
    client = boto3.client("sqs", endpoint_url=sqs_server.url, region_name="us-east-1")
    name = f"q-{uuid.uuid4().hex[:12]}"
    dlq_url = client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = client.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": "30",
            "MaximumMessageSize": "1048576",
            "RedrivePolicy": f'{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"3"}}',
        },
    )["QueueUrl"]
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", sqs_server.url)
    monkeypatch.setenv("LITELLM_MLFLOW_QUEUE_URL", url)
    return Queue(url=url, dlq_url=dlq_url, endpoint=sqs_server.url, client=client)


@pytest.fixture
def sagemaker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """Every SageMaker client the code under test makes is this stubbed one (moto has no SageMaker MLflow APIs);
    the regions it asked for are recorded in `.regions`."""
    client = boto3.client("sagemaker", region_name="us-east-1")
    regions: list[str | None] = []
    original = boto3.Session.client

    def client_for(self, service_name, *args, **kwargs):
        if service_name == "sagemaker":
            regions.append(kwargs.get("region_name"))
            return client
        return original(self, service_name, *args, **kwargs)

    monkeypatch.setattr(boto3.Session, "client", client_for)
    with Stubber(client) as stub:
        stub.regions = regions
        yield stub
        stub.assert_no_pending_responses()
