"""`litellm-mlflow login`: open the MLflow UI, already logged in, through a fresh single-use presigned link.

Where the link comes from (first that applies):
  --tracking-uri URI  an http(s) MLflow is opened as is; a SageMaker tracking-server / MLflow-App ARN is presigned
                      directly with your own credentials (needs sagemaker:CreatePresignedMlflow*Url)
  --function-url URL  the presign function URL: a SigV4-signed GET of /url (needs lambda:InvokeFunctionUrl and
                      lambda:InvokeFunction); an http:// URL without AWS credentials is asked unsigned
  otherwise           the FunctionUrl output of the deployed stack (--stack, --region)
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
import webbrowser
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, NoCredentialsError

from litellm_mlflow.cli.commands.common import (
    NO_CREDENTIALS_HINT,
    CliError,
    ExitCode,
    add_stack_arguments,
    aws_session,
    local_state,
    read_outputs,
    require_output,
)
from litellm_mlflow.cli.function_url_client import FunctionUrlError, SigningIdentity, fetch_link, region_of_function_url
from litellm_mlflow.cli.stack_outputs import FUNCTION_URL
from litellm_mlflow.mlflow_target import InvalidTrackingUri, TargetKind, parse_tracking_uri
from litellm_mlflow.presign.service import (
    DEFAULT_EXPIRES_SECONDS,
    DEFAULT_SESSION_SECONDS,
    EXPIRES,
    SESSION,
    DurationRange,
    InvalidDuration,
    MlflowApiError,
    PresignedUrl,
    presign_url,
)

EXIT_BY_STATUS = {
    400: ExitCode.USAGE,
    403: ExitCode.ACCESS_DENIED,
    404: ExitCode.MLFLOW_NOT_FOUND,
    429: ExitCode.THROTTLED,
    503: ExitCode.MLFLOW_NOT_READY,
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "login",
        help="open the MLflow UI with a fresh presigned link",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_stack_arguments(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--function-url", help="the presign function URL (default: the stack's FunctionUrl output)")
    source.add_argument("--tracking-uri", help="an MLflow URL or SageMaker MLflow ARN to open without the function")
    source.add_argument(
        "--local",
        nargs="?",
        const=".local-stack",
        metavar="DIR",
        help="open the local stack's MLflow (from `litellm-mlflow demo --keep-running`, state in DIR)",
    )
    parser.add_argument(
        "--print", dest="print_only", action="store_true", help="print the link instead of opening a browser"
    )
    parser.add_argument(
        "--no-sign", action="store_true", help="send the request unsigned (a local presign endpoint needs no SigV4)"
    )
    parser.add_argument(
        "--expires", type=_seconds(EXPIRES), help="link validity in seconds, 5-300 (default: the function's, 300)"
    )
    parser.add_argument(
        "--session", type=_seconds(SESSION), help="UI session in seconds, 1800-43200 (default: the function's, 43200)"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds (default: 30)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> ExitCode:
    session = aws_session(args)
    if args.local:
        args.tracking_uri = local_state(args).mlflow_url
    if args.tracking_uri:
        link = _link_from_tracking_uri(args.tracking_uri, session, args)
    else:
        function_url = args.function_url or require_output(read_outputs(session, args.stack), FUNCTION_URL)
        identity = _signing_identity(session, function_url, args)
        try:
            link = fetch_link(function_url, identity, args.expires, args.session, timeout=args.timeout)
        except FunctionUrlError as exc:
            raise _refused(exc, function_url, signed=identity is not None) from None
    _deliver(link, print_only=args.print_only)
    return ExitCode.OK


def _seconds(duration: DurationRange) -> Any:
    def parse(raw: str) -> int:
        try:
            return duration.parse(raw, 0)
        except InvalidDuration as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _signing_identity(session: boto3.Session, function_url: str, args: argparse.Namespace) -> SigningIdentity | None:
    """Sign whenever credentials exist; go unsigned only on --no-sign or for a plain-http (local) endpoint."""
    if args.no_sign:
        return None
    try:
        credentials = session.get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials is not None else None
    except BotoCoreError as exc:
        raise CliError(f"could not load your AWS credentials: {exc}", ExitCode.NO_CREDENTIALS) from None
    if frozen is None or not frozen.access_key:
        if urllib.parse.urlsplit(function_url).scheme == "http":
            return None
        raise CliError(f"{NO_CREDENTIALS_HINT} (the function URL needs a SigV4 signature)", ExitCode.NO_CREDENTIALS)
    region = region_of_function_url(function_url) or args.region or session.region_name
    if not region:
        raise CliError("cannot tell which region to sign for: pass --region", ExitCode.USAGE)
    return SigningIdentity(frozen, region)


def _refused(exc: FunctionUrlError, function_url: str, signed: bool) -> CliError:
    """Turn the function URL's answer into the message that says what to fix."""
    if exc.status is None:
        return CliError(exc.message, ExitCode.UNREACHABLE)
    said = f"{exc.status}: {exc.message}"
    if exc.status == 403 and exc.code == "sagemaker_access_denied":
        return CliError(f"the presign function itself was denied by SageMaker ({said})", ExitCode.ACCESS_DENIED)
    if exc.status == 403 and signed:
        return CliError(
            f"{function_url} refused your signed request ({said}). Your AWS identity needs BOTH "
            "lambda:InvokeFunctionUrl AND lambda:InvokeFunction on the presign function; wrong or expired "
            "credentials get the same answer (check `aws sts get-caller-identity`).",
            ExitCode.ACCESS_DENIED,
        )
    if exc.status == 403:
        return CliError(
            f"{function_url} refused an unsigned request ({said}): it uses AWS_IAM auth, so configure AWS "
            "credentials (and drop --no-sign). The identity needs lambda:InvokeFunctionUrl AND lambda:InvokeFunction.",
            ExitCode.ACCESS_DENIED,
        )
    if exc.status == 503 and exc.code == "mlflow_not_ready":
        return CliError(exc.message, ExitCode.MLFLOW_NOT_READY)
    if exc.status == 404 and exc.code == "mlflow_not_found":
        return CliError(exc.message, ExitCode.MLFLOW_NOT_FOUND)
    if exc.status == 404:
        return CliError(f"no presign endpoint at {function_url} ({said}): check --function-url", ExitCode.ERROR)
    if exc.status == 429:
        wait = f"; retry after {exc.retry_after} s" if exc.retry_after else ""
        return CliError(f"throttled ({said}){wait}", ExitCode.THROTTLED)
    if exc.status == 400:
        return CliError(exc.message, ExitCode.USAGE)
    return CliError(f"{function_url} answered {said}", ExitCode.ERROR)


def _link_from_tracking_uri(uri: str, session: boto3.Session, args: argparse.Namespace) -> PresignedUrl:
    try:
        target = parse_tracking_uri(uri)
    except InvalidTrackingUri as exc:
        raise CliError(str(exc).replace("MLFLOW_TRACKING_URI", "--tracking-uri"), ExitCode.USAGE) from None
    if target.kind is TargetKind.URL:
        return presign_url(target, None)
    sagemaker = session.client("sagemaker", region_name=target.region)
    try:
        return presign_url(
            target, sagemaker, args.expires or DEFAULT_EXPIRES_SECONDS, args.session or DEFAULT_SESSION_SECONDS
        )
    except NoCredentialsError:
        raise CliError(NO_CREDENTIALS_HINT, ExitCode.NO_CREDENTIALS) from None
    except MlflowApiError as exc:
        raise CliError(exc.message, EXIT_BY_STATUS.get(exc.status, ExitCode.ERROR)) from None


def _deliver(link: PresignedUrl, print_only: bool) -> None:
    """Open the browser (or print). The link goes to stdout only when printed, so `--print` pipes cleanly."""
    validity = _validity(link)
    if print_only:
        print(link.url)
        if validity:
            print(validity, file=sys.stderr)
        return
    if webbrowser.open(link.url, new=2):
        print(f"Opened the MLflow UI in your browser. {validity}".strip(), file=sys.stderr)
        return
    print(f"Could not open a browser; open this link yourself. {validity}".strip(), file=sys.stderr)
    print(link.url)


def _validity(link: PresignedUrl) -> str:
    if link.expires_in_seconds is None:
        return ""
    text = f"Single-use link, valid for {link.expires_in_seconds} s"
    if link.session_expiration_seconds:
        text += f"; the UI session lasts {_duration(link.session_expiration_seconds)}"
    return text + "."


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds // 60} min"
