"""How the local pipeline is wired, as a deployment is: the proxy's config and environment, the queue and its DLQ
with a redrive policy, and the consumer's environment. No processes are started here (see `stack`, `servers`)."""

from __future__ import annotations

import json
import secrets
from typing import Any

from litellm_mlflow.local.demo_keys import CUSTOM_AUTH_PATH
from litellm_mlflow.local.stack_state import REGION

CALLBACK_PATH = "litellm_mlflow.callback.sqs_logger"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local"}
REGION_ENV = {"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}


# A model group LiteLLM has no price for (an in-house fine-tune): its calls show "cost unknown", never $0.
UNPRICED_MODEL_GROUP = "acme-coder"


def mock_models() -> list[dict[str, Any]]:
    """Mock deployments for the demo: models LiteLLM's (offline) cost map prices, one it cannot price, one that
    always fails, one that calls a tool. Group names (`model_name`) differ from the deployments, as in real proxies."""
    tool_call = {
        "id": "call_weather_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps({"city": "Tokyo"})},
    }
    return [
        {
            "model_name": "gpt-4o-mini",
            "litellm_params": {"model": "openai/gpt-4o-mini", "mock_response": "Hi! How can I help?"},
        },
        {
            "model_name": "gpt-4o",
            "litellm_params": {"model": "openai/gpt-4o", "mock_response": "Here is a longer answer."},
        },
        {
            "model_name": "claude-sonnet",
            "litellm_params": {"model": "anthropic/claude-sonnet-4-5", "mock_response": "Certainly."},
        },
        {
            "model_name": UNPRICED_MODEL_GROUP,
            "litellm_params": {"model": "openai/acme-coder-v1", "mock_response": "def reverse(xs): return xs[::-1]"},
        },
        {
            "model_name": "flaky",
            "litellm_params": {"model": "openai/gpt-4o-mini", "mock_response": "litellm.RateLimitError"},
        },
        {"model_name": "tools", "litellm_params": {"model": "openai/gpt-4o", "mock_tool_calls": [tool_call]}},
    ]


def proxy_config(
    models: list[dict[str, Any]] | None = None,
    callbacks: str | None = CALLBACK_PATH,
    custom_auth: str | None = CUSTOM_AUTH_PATH,
) -> dict[str, Any]:
    """A litellm proxy config that uses our callback exactly as the README says (`callbacks=None`: no callback);
    `custom_auth` (the demo's keys, teams and org; None: the master key only) is LiteLLM's own auth hook."""
    deployments = []
    for model in models or mock_models():
        params = {"api_key": "sk-mock-not-used", **model["litellm_params"]}
        deployments.append({"model_name": model["model_name"], "litellm_params": params})
    settings: dict[str, Any] = {"num_retries": 0, "request_timeout": 30}
    if callbacks:
        settings["callbacks"] = callbacks
    config = {"model_list": deployments, "litellm_settings": settings, "router_settings": {"num_retries": 0}}
    if custom_auth:
        config["general_settings"] = {"custom_auth": custom_auth}
    return config


def proxy_env(sqs_endpoint: str, queue_url: str, master_key: str) -> dict[str, str]:
    """The proxy's environment: fake credentials, the local SQS endpoint, our queue, the master key."""
    return {
        **FAKE_CREDENTIALS,
        **REGION_ENV,
        "AWS_ENDPOINT_URL_SQS": sqs_endpoint,
        "LITELLM_MLFLOW_QUEUE_URL": queue_url,
        "LITELLM_MASTER_KEY": master_key,
        "LITELLM_TELEMETRY": "False",
    }


def consumer_env(mlflow_url: str, experiment: str, dlq_url: str, sqs_endpoint: str) -> dict[str, str]:
    """What the consumer Lambda gets from its function configuration in a deployment (the DLQ it sends records that
    can never be stored to), plus the local SQS endpoint its boto3 client must use."""
    return {
        "MLFLOW_TRACKING_URI": mlflow_url,
        "MLFLOW_EXPERIMENT_NAME": experiment,
        "LITELLM_MLFLOW_DLQ_URL": dlq_url,
        "AWS_ENDPOINT_URL_SQS": sqs_endpoint,
    }


CONSUMER_ENV_DEFAULTS = {
    "POWERTOOLS_SERVICE_NAME": "litellm-mlflow-consumer",
    "POWERTOOLS_METRICS_NAMESPACE": "LitellmMlflowLocal",
}


def create_queues(sqs: Any, visibility_timeout_s: int, max_receive_count: int) -> tuple[str, str]:
    """The events queue and its DLQ (redrive after `max_receive_count` receives), as the CDK stack defines them.

    moto keeps queues per process: a unique suffix keeps two stacks in one process (tests) apart."""
    suffix = secrets.token_hex(3)
    dlq_url = sqs.create_queue(
        QueueName=f"litellm-mlflow-dlq-{suffix}", Attributes={"MessageRetentionPeriod": "1209600"}
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
    queue_url = sqs.create_queue(
        QueueName=f"litellm-mlflow-events-{suffix}",
        Attributes={
            "VisibilityTimeout": str(visibility_timeout_s),
            "MaximumMessageSize": "1048576",
            "RedrivePolicy": json.dumps(redrive),
        },
    )["QueueUrl"]
    return queue_url, dlq_url


def queue_depth(sqs: Any, queue_url: str) -> int:
    """Visible plus in-flight messages."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def peek_messages(sqs: Any, queue_url: str) -> list[dict]:
    """Every message of a (small) queue, made visible again right away (the DLQ, for the demo and tests)."""
    seen: dict[str, dict] = {}
    for _ in range(100):
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=2, MessageAttributeNames=["All"]
        ).get("Messages", [])
        new = [m for m in batch if m["MessageId"] not in seen]
        if not new:
            break
        seen.update({m["MessageId"]: m for m in new})
    for message in seen.values():
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    return list(seen.values())
