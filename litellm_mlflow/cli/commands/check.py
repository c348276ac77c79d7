"""`litellm-mlflow check`: publish a synthetic event to the queue and wait until MLflow shows it (the workshop's
`test`). Exit 0 when it arrived; otherwise a clear reason: still queued, in the dead-letter queue, or lost track."""

from __future__ import annotations

import argparse
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from litellm_mlflow.cli.commands.common import (
    NO_CREDENTIALS_HINT,
    CliError,
    ExitCode,
    add_local_argument,
    add_stack_arguments,
    aws_session,
    local_state,
    read_outputs,
    require_output,
)
from litellm_mlflow.cli.pipeline_check import CheckTarget, run_check, trace_finder
from litellm_mlflow.cli.stack_outputs import DEAD_LETTER_QUEUE_URL, MLFLOW_ARN, QUEUE_URL


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check", help="send a synthetic event through the pipeline and wait until MLflow shows it", description=__doc__
    )
    add_stack_arguments(parser)
    add_local_argument(parser)
    parser.add_argument("--experiment", help="MLflow experiment the consumer writes to (default: litellm-monitoring)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (default: 120)")
    parser.set_defaults(run=run)


def target_and_client(args: argparse.Namespace) -> tuple[CheckTarget, Any]:
    if args.local:
        state = local_state(args)
        target = CheckTarget(
            queue_url=state.queue_url,
            tracking_uri=state.mlflow_url,
            experiment=args.experiment or state.experiment,
            dlq_url=state.dlq_url,
            sqs_endpoint=state.sqs_endpoint,
            region=state.region,
        )
        client = boto3.client(
            "sqs",
            endpoint_url=state.sqs_endpoint,
            region_name=state.region,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        return target, client
    session = aws_session(args)
    outputs = read_outputs(session, args.stack)
    target = CheckTarget(
        queue_url=require_output(outputs, QUEUE_URL),
        tracking_uri=require_output(outputs, MLFLOW_ARN),
        experiment=args.experiment or "litellm-monitoring",
        dlq_url=outputs.get(DEAD_LETTER_QUEUE_URL),
        region=outputs.region,
    )
    return target, session.client("sqs", region_name=outputs.region)


def run(args: argparse.Namespace) -> ExitCode:
    target, sqs = target_and_client(args)
    try:
        result = run_check(
            target,
            sqs,
            trace_finder(target.tracking_uri, target.experiment),
            timeout_s=args.timeout,
            progress=lambda message: print(message, flush=True),
        )
    except NoCredentialsError:
        raise CliError(NO_CREDENTIALS_HINT, ExitCode.NO_CREDENTIALS) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise CliError(
            f"could not publish to {target.queue_url}: {error.get('Code')}: {error.get('Message')}"
        ) from None
    except BotoCoreError as exc:
        raise CliError(f"could not reach the queue {target.queue_url}: {exc}", ExitCode.UNREACHABLE) from None
    if not result.ok:
        raise CliError(result.reason, ExitCode.ERROR)
    print(f"ok: event {result.check_id} is in MLflow ({target.experiment}) after {result.seconds:.1f}s")
    return ExitCode.OK
