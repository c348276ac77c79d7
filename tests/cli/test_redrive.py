"""`litellm-mlflow redrive`: --local moves DLQ messages back on moto's SQS (attributes kept); on AWS it starts SQS's
message move task (moto lacks StartMessageMoveTask, so Stubber answers) and follows it; it asks first."""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from litellm_mlflow.cli.commands import redrive as redrive_command
from litellm_mlflow.cli.commands.common import ExitCode
from litellm_mlflow.cli.commands.redrive import Queues, redrive
from litellm_mlflow.cli.main import main
from litellm_mlflow.local.stack import LocalStackState
from tests.cli.test_login import create_stack

GZIP_ATTRIBUTE = {"content-encoding": {"DataType": "String", "StringValue": "gzip"}}


@pytest.fixture
def local_stack(sqs_queue, tmp_path: Path) -> Path:
    LocalStackState(
        mlflow_url="http://127.0.0.1:1",
        sqs_endpoint=sqs_queue.endpoint,
        queue_url=sqs_queue.url,
        dlq_url=sqs_queue.dlq_url,
        proxy_url="",
        master_key="",
        experiment="redrive-test",
    ).save(tmp_path)
    return tmp_path


def _fill_dlq(sqs_queue, count: int) -> set[str]:
    bodies = {f"event-{uuid.uuid4().hex}" for _ in range(count)}
    for body in bodies:
        sqs_queue.client.send_message(QueueUrl=sqs_queue.dlq_url, MessageBody=body, MessageAttributes=GZIP_ATTRIBUTE)
    return bodies


def test_local_redrive_moves_every_message_back_with_its_attributes(sqs_queue, local_stack, capsys) -> None:
    bodies = _fill_dlq(sqs_queue, 13)

    assert main(["redrive", "--local", str(local_stack), "--yes"]) == ExitCode.OK

    out = capsys.readouterr().out
    assert "moved 13 message(s) back to" in out
    back = sqs_queue.receive_all()
    assert {m["Body"] for m in back} == bodies
    assert all(m["MessageAttributes"]["content-encoding"]["StringValue"] == "gzip" for m in back)
    assert sqs_queue.receive_all(sqs_queue.dlq_url) == []


def test_redrive_asks_first_and_moves_nothing_on_no(sqs_queue, local_stack, capsys) -> None:
    _fill_dlq(sqs_queue, 3)
    questions: list[str] = []
    queues = Queues(queue_url=sqs_queue.url, dlq_url=sqs_queue.dlq_url)

    code = redrive(
        sqs_queue.client,
        queues,
        local=True,
        assume_yes=False,
        timeout_s=5,
        confirm=lambda q: questions.append(q) or False,
    )

    assert code == ExitCode.ERROR
    assert questions and questions[0].startswith("3 message(s) in ") and sqs_queue.url.rsplit("/", 1)[1] in questions[0]
    assert sqs_queue.receive_all() == []
    # Without a terminal and without --yes: one line saying to pass --yes, still nothing moved.
    assert main(["redrive", "--local", str(local_stack)]) == ExitCode.USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--yes" in err
    assert sqs_queue.receive_all() == []


def test_redrive_of_an_empty_dlq_says_so(sqs_queue, local_stack, capsys) -> None:
    assert main(["redrive", "--local", str(local_stack), "--yes"]) == ExitCode.OK
    assert "is empty: nothing to redrive" in capsys.readouterr().out


DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/LitellmMlflow-DLQ"
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/LitellmMlflow-Queue"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:LitellmMlflow-DLQ"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:LitellmMlflow-Queue"


def _stub_move_task(stub: Stubber, final_status: str) -> None:
    counts = {"ApproximateNumberOfMessages": "40", "ApproximateNumberOfMessagesNotVisible": "2"}
    stub.add_response(
        "get_queue_attributes", {"Attributes": counts}, {"QueueUrl": DLQ_URL, "AttributeNames": list(counts)}
    )
    for url, arn in ((DLQ_URL, DLQ_ARN), (QUEUE_URL, QUEUE_ARN)):
        stub.add_response(
            "get_queue_attributes", {"Attributes": {"QueueArn": arn}}, {"QueueUrl": url, "AttributeNames": ["QueueArn"]}
        )
    stub.add_response(
        "start_message_move_task", {"TaskHandle": "handle-1"}, {"SourceArn": DLQ_ARN, "DestinationArn": QUEUE_ARN}
    )
    listing = {"SourceArn": DLQ_ARN, "MaxResults": 10}
    running = {"TaskHandle": "handle-1", "Status": "RUNNING", "ApproximateNumberOfMessagesMoved": 10}
    stub.add_response("list_message_move_tasks", {"Results": [running]}, listing)
    done = {"TaskHandle": "handle-1", "Status": final_status, "ApproximateNumberOfMessagesMoved": 42}
    if final_status == "FAILED":
        done["FailureReason"] = "AccessDenied on the destination queue"
    stub.add_response("list_message_move_tasks", {"Results": [done]}, listing)


@pytest.fixture
def stubbed_sqs(monkeypatch: pytest.MonkeyPatch, sqs_server):
    """Every SQS client the command makes is this stubbed one; CloudFormation stays moto's (for the outputs)."""
    monkeypatch.setattr(redrive_command, "POLL_SECONDS", 0.0)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", sqs_server.url)
    client = boto3.client("sqs", region_name="us-east-1")
    original = boto3.Session.client

    def client_for(self, service_name, *args, **kwargs):
        return client if service_name == "sqs" else original(self, service_name, *args, **kwargs)

    monkeypatch.setattr(boto3.Session, "client", client_for)
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def test_deployed_redrive_starts_the_sqs_move_task_and_follows_it(stubbed_sqs, sqs_server, capsys) -> None:
    cloudformation = boto3.client("cloudformation", endpoint_url=sqs_server.url, region_name="us-east-1")
    stack = create_stack(cloudformation, {"QueueUrl": QUEUE_URL, "DeadLetterQueueUrl": DLQ_URL})
    _stub_move_task(stubbed_sqs, "COMPLETED")

    assert main(["redrive", "--stack", stack, "--yes"]) == ExitCode.OK

    out = capsys.readouterr().out
    assert "started the SQS message move task LitellmMlflow-DLQ -> LitellmMlflow-Queue" in out
    assert "moved 42 message(s) back to LitellmMlflow-Queue" in out


def test_a_failed_move_task_is_one_line_with_sqs_reason(stubbed_sqs, sqs_server, capsys) -> None:
    cloudformation = boto3.client("cloudformation", endpoint_url=sqs_server.url, region_name="us-east-1")
    stack = create_stack(cloudformation, {"QueueUrl": QUEUE_URL, "DeadLetterQueueUrl": DLQ_URL})
    _stub_move_task(stubbed_sqs, "FAILED")

    assert main(["redrive", "--stack", stack, "--yes"]) == ExitCode.ERROR

    err = capsys.readouterr().err.strip()
    assert err == (
        "litellm-mlflow redrive: the message move task ended FAILED after 42 message(s): "
        "AccessDenied on the destination queue"
    )
