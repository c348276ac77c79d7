"""litellm-mlflow: every LiteLLM call as an MLflow trace and per-model metrics, through SQS, losing nothing."""

__version__ = "0.1.0"
