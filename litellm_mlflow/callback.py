"""The public path users put in their LiteLLM config: `callbacks: litellm_mlflow.callback.sqs_logger`.

The code lives in `litellm_mlflow.publish` (everything that runs inside the LiteLLM proxy); this module only keeps
the documented name stable.
"""

from litellm_mlflow.publish.litellm_logger import SqsEventLogger, sqs_logger

__all__ = ["SqsEventLogger", "sqs_logger"]
