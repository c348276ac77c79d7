"""What every subcommand shares: exit codes, the error that carries one, and the AWS session / stack look-ups.

Each failure a user can fix has its own exit code and a message naming the fix, never a traceback.
"""

from __future__ import annotations

import argparse
from enum import IntEnum
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from litellm_mlflow.cli.stack_outputs import (
    DEFAULT_STACK_NAME,
    StackNotFound,
    StackOutputMissing,
    StackOutputs,
    read_stack_outputs,
)


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2  # argparse's own code for bad arguments
    NO_CREDENTIALS = 3
    ACCESS_DENIED = 4
    MLFLOW_NOT_READY = 5
    STACK_NOT_FOUND = 6
    MLFLOW_NOT_FOUND = 7
    UNREACHABLE = 8
    THROTTLED = 9


class CliError(Exception):
    """A failure to report as one clear line (no traceback) with a specific exit code."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


NO_CREDENTIALS_HINT = (
    "no AWS credentials found (environment, ~/.aws, SSO, container or instance role): "
    "run `aws configure` or `aws sso login`, or set AWS_PROFILE"
)


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack",
        default=DEFAULT_STACK_NAME,
        help=f"the deployed CloudFormation stack to read outputs from (default: {DEFAULT_STACK_NAME})",
    )
    parser.add_argument("--region", help="AWS region of the stack (default: from AWS_REGION / your profile)")


def aws_session(args: argparse.Namespace) -> boto3.Session:
    return boto3.Session(region_name=getattr(args, "region", None) or None)


def read_outputs(session: boto3.Session, stack_name: str) -> StackOutputs:
    """The stack's outputs, with every way that can fail turned into a CliError."""
    try:
        return read_stack_outputs(session.client("cloudformation"), stack_name)
    except StackNotFound as exc:
        raise CliError(str(exc), ExitCode.STACK_NOT_FOUND) from None
    except NoRegionError:
        raise CliError("no AWS region: pass --region or set AWS_REGION", ExitCode.USAGE) from None
    except NoCredentialsError:
        raise CliError(NO_CREDENTIALS_HINT, ExitCode.NO_CREDENTIALS) from None
    except ClientError as exc:
        raise aws_client_error(exc, f"reading stack {stack_name}", "cloudformation:DescribeStacks") from None
    except BotoCoreError as exc:
        raise CliError(f"could not read stack {stack_name}: {exc}", ExitCode.UNREACHABLE) from None


def require_output(outputs: StackOutputs, key: str) -> str:
    try:
        return outputs.require(key)
    except StackOutputMissing as exc:
        raise CliError(str(exc), ExitCode.STACK_NOT_FOUND) from None


_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException"}
_THROTTLED = {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}


def aws_client_error(exc: ClientError, doing: str, action: str) -> CliError:
    error: dict[str, Any] = exc.response.get("Error", {})
    code, message = error.get("Code", "Unknown"), error.get("Message", "")
    if code in _DENIED:
        return CliError(f"access denied {doing}: your identity needs {action} ({message})", ExitCode.ACCESS_DENIED)
    if code in _EXPIRED:
        return CliError(f"AWS rejected your credentials {doing} ({code}): refresh them", ExitCode.NO_CREDENTIALS)
    if code in _THROTTLED:
        return CliError(f"throttled {doing} ({code}): retry in a few seconds", ExitCode.THROTTLED)
    return CliError(f"failed {doing}: {code}: {message}", ExitCode.ERROR)


def add_local_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--local",
        nargs="?",
        const=".local-stack",
        metavar="DIR",
        help="use the local stack of `litellm-mlflow demo --keep-running` (state in DIR, default .local-stack)",
    )


def local_state(args: argparse.Namespace) -> Any:
    """The running local stack's addresses, or a CliError saying how to start one."""
    from litellm_mlflow.local.stack_state import LocalStackState

    try:
        return LocalStackState.load(args.local)
    except FileNotFoundError as exc:
        raise CliError(str(exc), ExitCode.STACK_NOT_FOUND) from None
