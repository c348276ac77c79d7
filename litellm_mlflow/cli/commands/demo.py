"""`litellm-mlflow demo`: the whole pipeline on this machine (local MLflow, local SQS, a real LiteLLM proxy, the
consumer), a realistic mix of requests through it, a summary, and the MLflow UI link. Ctrl-C stops everything."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from litellm_mlflow.cli.commands.common import CliError, ExitCode
from litellm_mlflow.local.servers import ServerStartError
from litellm_mlflow.local.stack_state import DEFAULT_WORKDIR


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline locally and send a realistic mix of requests through it",
        description=__doc__,
    )
    parser.add_argument("--requests", type=int, default=60, help="how many requests to send (default: 60)")
    parser.add_argument("--keep-running", action="store_true", help="leave the stack and the MLflow UI up afterwards")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where data and logs go (.local-stack)")
    parser.add_argument("--mlflow-port", type=int, help="MLflow server port (default: a free one)")
    parser.add_argument("--sqs-port", type=int, help="local SQS port (default: a free one)")
    parser.add_argument("--proxy-port", type=int, help="LiteLLM proxy port (default: a free one)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for every trace (default: 180)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from litellm_mlflow.local.demo import run_demo

    if args.requests < 1:
        raise CliError("--requests must be at least 1", ExitCode.USAGE)
    try:
        return run_demo(
            requests=args.requests,
            keep_running=args.keep_running,
            workdir=args.workdir,
            mlflow_port=args.mlflow_port,
            sqs_port=args.sqs_port,
            proxy_port=args.proxy_port,
            timeout_s=args.timeout,
            out=lambda line: print(line, flush=True),
        )
    except ServerStartError as exc:
        raise CliError(str(exc), ExitCode.UNREACHABLE) from None
