"""The `litellm-mlflow` command: entry point, subcommands, and the helpers only commands use.

Not shipped in the Lambda layer.
"""
