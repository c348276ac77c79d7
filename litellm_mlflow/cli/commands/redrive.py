"""`litellm-mlflow redrive`: move the dead-letter queue's messages back to the ingest queue (after an MLflow outage).

Counts the DLQ first and asks before moving (--yes skips the question). On AWS it starts SQS's own message move
task (StartMessageMoveTask, DLQ -> queue) and follows it until it completes; the consumer then writes the events
again, and as trace ids come from the event ids, an event that had landed after all makes no second trace.
With --local the local SQS (moto) has no move task, so the messages are moved by receive / send / delete, with
their attributes, so gzipped bodies stay decodable.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from litellm_mlflow.cli.commands.common import (
    NO_CREDENTIALS_HINT,
    CliError,
    ExitCode,
    add_local_argument,
    add_stack_arguments,
    aws_client_error,
    aws_session,
    local_state,
    read_outputs,
    require_output,
)
from litellm_mlflow.cli.stack_outputs import DEAD_LETTER_QUEUE_URL, QUEUE_URL

POLL_SECONDS = 2.0
MOVE_TASK_DONE = {"COMPLETED", "CANCELLED", "FAILED"}
REQUIRED_ACTIONS = (
    "sqs:GetQueueAttributes, sqs:StartMessageMoveTask, sqs:ListMessageMoveTasks "
    "(and ReceiveMessage/DeleteMessage on the DLQ, SendMessage on the queue)"
)


@dataclass(frozen=True)
class Queues:
    queue_url: str
    dlq_url: str


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "redrive",
        help="move the dead-letter queue's messages back to the queue (after MLflow was down)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_stack_arguments(parser)
    add_local_argument(parser)
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds to follow the move task before leaving it running"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> ExitCode:
    if args.local:
        state = local_state(args)
        sqs = boto3.client("sqs", region_name=state.region, endpoint_url=state.sqs_endpoint)
        queues = Queues(queue_url=state.queue_url, dlq_url=state.dlq_url)
    else:
        session = aws_session(args)
        outputs = read_outputs(session, args.stack)
        queues = Queues(
            queue_url=require_output(outputs, QUEUE_URL), dlq_url=require_output(outputs, DEAD_LETTER_QUEUE_URL)
        )
        sqs = session.client("sqs", region_name=outputs.region)
    try:
        return redrive(sqs, queues, local=bool(args.local), assume_yes=args.yes, timeout_s=args.timeout)
    except NoCredentialsError:
        raise CliError(NO_CREDENTIALS_HINT, ExitCode.NO_CREDENTIALS) from None
    except ClientError as exc:
        raise aws_client_error(exc, "redriving the dead-letter queue", REQUIRED_ACTIONS) from None
    except BotoCoreError as exc:
        raise CliError(f"could not reach SQS: {exc}", ExitCode.UNREACHABLE) from None


def redrive(
    sqs: Any,
    queues: Queues,
    *,
    local: bool,
    assume_yes: bool,
    timeout_s: float,
    confirm: Callable[[str], bool] | None = None,
) -> ExitCode:
    count = message_count(sqs, queues.dlq_url)
    if count == 0:
        print(f"the dead-letter queue {_name(queues.dlq_url)} is empty: nothing to redrive")
        return ExitCode.OK
    question = f"{count} message(s) in {_name(queues.dlq_url)}; move them back to {_name(queues.queue_url)}?"
    if not assume_yes and not (confirm or _ask)(question):
        print("nothing moved")
        return ExitCode.ERROR
    if local:
        moved = move_by_hand(sqs, queues)
        print(f"moved {moved} message(s) back to {_name(queues.queue_url)}")
        return ExitCode.OK
    return start_move_task(sqs, queues, timeout_s)


def message_count(sqs: Any, queue_url: str) -> int:
    """Messages waiting plus those in flight (SQS's approximate counts)."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def start_move_task(sqs: Any, queues: Queues, timeout_s: float) -> ExitCode:
    """Start SQS's message move task and follow it (with a deadline) until SQS says it is done."""
    dlq_arn = _arn(sqs, queues.dlq_url)
    handle = sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=_arn(sqs, queues.queue_url))["TaskHandle"]
    print(f"started the SQS message move task {_name(queues.dlq_url)} -> {_name(queues.queue_url)}")
    deadline = time.monotonic() + timeout_s
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10)["Results"]
        task = next((t for t in tasks if t.get("TaskHandle") == handle), tasks[0] if tasks else {})
        status = task.get("Status", "UNKNOWN")
        moved = task.get("ApproximateNumberOfMessagesMoved", 0)
        if status in MOVE_TASK_DONE:
            break
        if time.monotonic() >= deadline:
            print(f"still {status} after {timeout_s:.0f} s ({moved} moved so far); it goes on in SQS")
            return ExitCode.OK
        time.sleep(POLL_SECONDS)
    if status != "COMPLETED":
        reason = task.get("FailureReason", "no reason given")
        raise CliError(f"the message move task ended {status} after {moved} message(s): {reason}")
    print(f"moved {moved} message(s) back to {_name(queues.queue_url)}")
    return ExitCode.OK


def move_by_hand(sqs: Any, queues: Queues) -> int:
    """Receive from the DLQ, send to the queue with the same body and attributes, then delete: until empty."""
    moved = 0
    while True:
        messages = sqs.receive_message(
            QueueUrl=queues.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return moved
        entries = [
            {
                "Id": str(index),
                "MessageBody": message["Body"],
                **({"MessageAttributes": message["MessageAttributes"]} if message.get("MessageAttributes") else {}),
            }
            for index, message in enumerate(messages)
        ]
        sent = sqs.send_message_batch(QueueUrl=queues.queue_url, Entries=entries)
        sent_ids = {entry["Id"] for entry in sent.get("Successful", [])}
        done = [
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
            for index, message in enumerate(messages)
            if str(index) in sent_ids
        ]
        if done:  # a message not sent stays in the DLQ and comes back after its visibility timeout
            sqs.delete_message_batch(QueueUrl=queues.dlq_url, Entries=done)
        if not done:
            failed = sent.get("Failed", [{}])[0]
            raise CliError(f"could not send to {_name(queues.queue_url)}: {failed.get('Message', 'unknown error')}")
        moved += len(done)


def _arn(sqs: Any, queue_url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _name(queue_url: str) -> str:
    return queue_url.rstrip("/").rsplit("/", 1)[-1]


def _ask(question: str) -> bool:
    if not sys.stdin.isatty():
        raise CliError(f"{question} (no terminal to ask on: pass --yes)", ExitCode.USAGE)
    return input(f"{question} [y/N] ").strip().lower() in {"y", "yes"}
