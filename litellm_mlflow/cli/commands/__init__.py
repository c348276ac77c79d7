"""One module per `litellm-mlflow` subcommand; each exposes `register(subparsers)` and sets `run` on its parser."""
