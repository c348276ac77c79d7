"""`litellm-mlflow info`: what is deployed and in what state (the workshop's `get-tracking-info`).

From the stack's outputs: the MLflow ARN and kind, the queue and dead-letter queue, the function URL, the artifact
bucket, the publisher policy, the monitoring dashboard and the alarm topic; from a describe call: the MLflow status
and version. With --tracking-uri: that MLflow alone (an http URL is checked with GET /health).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

import boto3
from botocore.exceptions import NoCredentialsError

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
from litellm_mlflow.cli.commands.login import EXIT_BY_STATUS
from litellm_mlflow.cli.stack_outputs import (
    ALARM_TOPIC_ARN,
    ARTIFACT_BUCKET,
    DASHBOARD_URL,
    DEAD_LETTER_QUEUE_URL,
    DEFAULT_STACK_NAME,
    FUNCTION_URL,
    MLFLOW_ARN,
    PUBLISHER_POLICY_ARN,
    QUEUE_URL,
)
from litellm_mlflow.mlflow_target import InvalidTrackingUri, MlflowTarget, TargetKind, parse_tracking_uri
from litellm_mlflow.presign.service import MlflowApiError, describe_mlflow

# (label, key in the JSON form), in print order.
FIELDS = (
    ("MLflow", "mlflow"),
    ("  kind", "kind"),
    ("  name", "name"),
    ("  status", "status"),
    ("  version", "version"),
    ("  artifacts", "artifact_store"),
    ("Queue", "queue_url"),
    ("Dead-letter queue", "dead_letter_queue_url"),
    ("Function URL", "function_url"),
    ("Artifact bucket", "artifact_bucket"),
    ("Publisher policy", "publisher_policy_arn"),
    ("Dashboard", "dashboard_url"),
    ("Alarm topic", "alarm_topic_arn"),
    ("Stack", "stack"),
    ("Open the UI", "open_ui"),
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show the deployed MLflow (ARN, kind, status, version), queue and function URL",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_stack_arguments(parser)
    parser.add_argument("--tracking-uri", help="describe this MLflow (URL or SageMaker ARN) instead of the stack's")
    add_local_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> ExitCode:
    session = aws_session(args)
    info: dict[str, Any] = {}
    if args.local:
        state = local_state(args)
        target = _target(state.mlflow_url, "the local stack's MLflow URL")
        info.update(
            queue_url=state.queue_url,
            dead_letter_queue_url=state.dlq_url,
            stack=f"local ({args.local}), LiteLLM proxy {state.proxy_url or 'not started'}",
            open_ui=f"litellm-mlflow login --local {args.local}",
        )
    elif args.tracking_uri:
        target = _target(args.tracking_uri, "--tracking-uri")
    else:
        outputs = read_outputs(session, args.stack)
        target = _target(require_output(outputs, MLFLOW_ARN), f"the stack's {MLFLOW_ARN} output")
        info.update(
            queue_url=outputs.get(QUEUE_URL),
            dead_letter_queue_url=outputs.get(DEAD_LETTER_QUEUE_URL),
            function_url=outputs.get(FUNCTION_URL),
            artifact_bucket=outputs.get(ARTIFACT_BUCKET),
            publisher_policy_arn=outputs.get(PUBLISHER_POLICY_ARN),
            dashboard_url=outputs.get(DASHBOARD_URL),
            alarm_topic_arn=outputs.get(ALARM_TOPIC_ARN),
            stack=f"{outputs.name} ({outputs.region}, {outputs.status})",
            open_ui=_login_command(args) if outputs.get(FUNCTION_URL) else None,
        )
    info = {"mlflow": target.uri, "kind": str(target.kind), **info}
    problem = _describe_into(info, target, session)
    _print(info, as_json=args.json)
    if problem is not None:
        print(f"warning: {problem.args[0]}", file=sys.stderr)
        return problem.exit_code
    return ExitCode.OK


def _login_command(args: argparse.Namespace) -> str:
    command = "litellm-mlflow login"
    if args.stack != DEFAULT_STACK_NAME:
        command += f" --stack {args.stack}"
    if args.region:
        command += f" --region {args.region}"
    return command


def _target(uri: str, source: str) -> MlflowTarget:
    try:
        return parse_tracking_uri(uri)
    except InvalidTrackingUri as exc:
        raise CliError(str(exc).replace("MLFLOW_TRACKING_URI", source), ExitCode.USAGE) from None


def _describe_into(info: dict[str, Any], target: MlflowTarget, session: boto3.Session) -> CliError | None:
    """Add name/status/version; a failure leaves status 'unknown' and comes back to be reported after the table."""
    if target.kind is TargetKind.URL:
        info["status"] = _health(target.uri)
        return None
    try:
        described = describe_mlflow(target, session.client("sagemaker", region_name=target.region))
    except NoCredentialsError:
        raise CliError(NO_CREDENTIALS_HINT, ExitCode.NO_CREDENTIALS) from None
    except MlflowApiError as exc:
        info.update(name=target.name, status="unknown")
        return CliError(exc.message, EXIT_BY_STATUS.get(exc.status, ExitCode.ERROR))
    info.update(
        name=described.name,
        status=f"{described.status} ({'ready' if described.ready else 'not ready'})",
        version=described.version,
        artifact_store=described.artifact_store,
    )
    if described.maintenance_status:
        info["status"] += f", maintenance {described.maintenance_status}"
    return None


def _health(url: str) -> str:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=3) as response:
            return f"reachable (GET /health: {response.status})"
    except (urllib.error.URLError, OSError) as exc:
        return f"unreachable ({getattr(exc, 'reason', exc)})"


def _print(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({key: value for key, value in info.items() if value is not None}, indent=2))
        return
    width = max(len(label) for label, _ in FIELDS) + 2
    for label, key in FIELDS:
        if info.get(key) is not None:
            print(f"{label:<{width}}{info[key]}")
