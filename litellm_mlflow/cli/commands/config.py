"""`litellm-mlflow config`: the litellm config lines for the deployed stack (from its outputs) or the local stack;
with --write PATH, merged into an existing litellm config (the workshop's update-config); the original is kept as
.bak (never overwritten; later versions as .bak.<time>)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from litellm_mlflow.cli.commands.common import (
    CliError,
    ExitCode,
    add_local_argument,
    add_stack_arguments,
    aws_session,
    local_state,
    read_outputs,
    require_output,
)
from litellm_mlflow.cli.litellm_config import ConfigMergeError, config_snippet, write_merged
from litellm_mlflow.cli.stack_outputs import QUEUE_URL


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "config",
        help="print (or merge into a file) the litellm config lines that turn the callback on",
        description=__doc__,
    )
    add_stack_arguments(parser)
    add_local_argument(parser)
    parser.add_argument("--write", type=Path, metavar="PATH", help="merge the lines into this litellm config file")
    parser.set_defaults(run=run)


def queue_settings(args: argparse.Namespace) -> tuple[str, dict[str, str]]:
    """(queue URL, extra environment) for the chosen stack."""
    if args.local:
        state = local_state(args)
        return state.queue_url, {"AWS_ENDPOINT_URL_SQS": state.sqs_endpoint, "AWS_REGION": state.region}
    outputs = read_outputs(aws_session(args), args.stack)
    extra = {"AWS_REGION": outputs.region} if outputs.region else {}
    return require_output(outputs, QUEUE_URL), extra


def run(args: argparse.Namespace) -> ExitCode:
    queue_url, extra = queue_settings(args)
    if args.write is None:
        print(
            config_snippet(queue_url, endpoint_url=extra.get("AWS_ENDPOINT_URL_SQS"), region=extra.get("AWS_REGION")),
            end="",
        )
        return ExitCode.OK
    try:
        backup = write_merged(args.write, queue_url, extra)
    except ConfigMergeError as exc:
        raise CliError(str(exc), ExitCode.USAGE) from None
    kept = f" (previous version kept as {backup})" if backup else ""
    print(f"merged the litellm-mlflow callback and queue URL into {args.write}{kept}")
    return ExitCode.OK
