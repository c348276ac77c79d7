"""The `litellm-mlflow` command. Each subcommand lives in `litellm_mlflow.cli.commands.<name>` and registers itself;
a failure the user can fix prints one line and exits with its own code (see `commands.common.ExitCode`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from litellm_mlflow import __version__
from litellm_mlflow.cli.commands import check, config, demo, info, login, redrive
from litellm_mlflow.cli.commands.common import CliError, ExitCode

# Add a module here to add a subcommand.
COMMANDS = (demo, config, check, login, info, redrive)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="litellm-mlflow",
        description="Every LiteLLM call as an MLflow trace and per-model metrics, through SQS, losing nothing.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    try:
        return int(run(args))
    except CliError as exc:
        print(f"litellm-mlflow {args.command}: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
