"""The embedded one-machine stack: local MLflow + local SQS (queue and DLQ) + a real LiteLLM proxy + the consumer.

It wires the same pieces a deployment has, on 127.0.0.1: the proxy's config names our callback exactly as the README
tells users to; the consumer is the real `functions/consumer/handler.py`, driven by an emulated SQS event source
mapping. `make demo`, the end-to-end test and the soak all start it through `LocalStack`.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from litellm_mlflow.local.event_source import Handler, SqsEventSourceEmulator, load_handler
from litellm_mlflow.local.servers import (
    LOOPBACK,
    MlflowServer,
    ServerStartError,
    SqsServer,
    free_port,
    kill,
    offline_env,
    port_in_use,
    spawn,
    wait_http_ok,
)

DEFAULT_WORKDIR = Path(".local-stack")
STATE_FILE = "stack.json"
CALLBACK_PATH = "litellm_mlflow.callback.sqs_logger"
REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local"}

Progress = Callable[[str], None]


def mock_models() -> list[dict[str, Any]]:
    """Mock deployments for the demo: several models, one that always fails, one that calls a tool."""
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
            "litellm_params": {"model": "anthropic/claude-3-5-sonnet-20241022", "mock_response": "Certainly."},
        },
        {
            "model_name": "flaky",
            "litellm_params": {"model": "openai/gpt-4o-mini", "mock_response": "litellm.RateLimitError"},
        },
        {"model_name": "tools", "litellm_params": {"model": "openai/gpt-4o", "mock_tool_calls": [tool_call]}},
    ]


def proxy_config(models: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A litellm proxy config that uses our callback exactly as the README says."""
    deployments = []
    for model in models or mock_models():
        params = {"api_key": "sk-mock-not-used", **model["litellm_params"]}
        deployments.append({"model_name": model["model_name"], "litellm_params": params})
    return {
        "model_list": deployments,
        "litellm_settings": {"callbacks": CALLBACK_PATH, "num_retries": 0, "request_timeout": 30},
        "router_settings": {"num_retries": 0},
    }


@dataclass
class LocalStackState:
    """What another command (`config`, `check`, `info`, `login`) needs to find a running local stack."""

    mlflow_url: str
    sqs_endpoint: str
    queue_url: str
    dlq_url: str
    proxy_url: str
    master_key: str
    experiment: str
    region: str = REGION

    def save(self, workdir: Path) -> Path:
        path = Path(workdir) / STATE_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, workdir: Path = DEFAULT_WORKDIR) -> LocalStackState:
        path = Path(workdir) / STATE_FILE
        if not path.exists():
            raise FileNotFoundError(
                f"no local stack state at {path}: start one with `litellm-mlflow demo --keep-running`"
            )
        return cls(**json.loads(path.read_text()))


@dataclass
class LocalStackOptions:
    workdir: Path = DEFAULT_WORKDIR
    experiment: str = "litellm-monitoring"
    mlflow_port: int | None = None
    sqs_port: int | None = None
    proxy_port: int | None = None
    visibility_timeout_s: int = 5
    max_receive_count: int = 3
    batch_size: int = 100
    batching_window_s: float = 0.5
    function_timeout_s: float = 60.0
    max_backoff_s: float = 30.0
    start_proxy: bool = True
    start_consumer: bool = True
    models: list[dict[str, Any]] | None = None
    extra_proxy_env: dict[str, str] = field(default_factory=dict)
    # Tests and the soak wrap the real handler to inject faults (e.g. an invocation killed mid-batch).
    handler_wrapper: Callable[[Handler], Handler] | None = None


class LocalStack:
    """Starts and stops every process of the local pipeline; nothing is left behind after `stop()`."""

    def __init__(self, options: LocalStackOptions | None = None, progress: Progress | None = None) -> None:
        self.options = options or LocalStackOptions()
        self.workdir = Path(self.options.workdir).resolve()
        self.progress = progress or (lambda message: None)
        self.master_key = "sk-local-" + secrets.token_hex(8)
        self.mlflow: MlflowServer | None = None
        self.sqs_server: SqsServer | None = None
        self.sqs: Any = None
        self.queue_url = ""
        self.dlq_url = ""
        self.proxy_port = 0
        self.proxy_proc = None
        self.consumer: SqsEventSourceEmulator | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> LocalStack:
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._start_sqs()
            # MLflow and the proxy take many seconds each to import and start: start both, then wait for both.
            self.progress(f"starting MLflow server (sqlite in {self.workdir / 'mlflow'})")
            self.mlflow = MlflowServer(self.workdir / "mlflow", port=self.options.mlflow_port)
            self.mlflow.launch()
            if self.options.start_proxy:
                self._launch_proxy()
            self.mlflow.wait_ready()
            if self.options.start_consumer:
                self.start_consumer()
            if self.options.start_proxy:
                wait_http_ok(
                    f"{self.proxy_url}/health/liveliness", 180, self.proxy_proc, self.workdir / "litellm-proxy.log"
                )
            self.state.save(self.workdir)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.consumer is not None:
            self.consumer.stop()
            self.consumer = None
        kill(self.proxy_proc)
        self.proxy_proc = None
        if self.mlflow is not None:
            self.mlflow.stop()
        if self.sqs_server is not None:
            self.sqs_server.stop()
        (self.workdir / STATE_FILE).unlink(missing_ok=True)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ pieces

    def _start_sqs(self) -> None:
        import boto3

        # In-process callers (SDK benchmarks, the soak's checks) talk to the local SQS with fake credentials.
        for key, value in {
            **FAKE_CREDENTIALS,
            **offline_env(),
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }.items():
            os.environ.setdefault(key, value)
        self.progress(f"starting local SQS (moto) on {LOOPBACK}")
        self.sqs_server = SqsServer(self.options.sqs_port).start()
        self.sqs = boto3.client(
            "sqs",
            endpoint_url=self.sqs_server.url,
            region_name=REGION,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        # moto keeps queues per process: a unique suffix keeps two stacks in one process (tests) apart.
        suffix = secrets.token_hex(3)
        self.dlq_url = self.sqs.create_queue(
            QueueName=f"litellm-mlflow-dlq-{suffix}", Attributes={"MessageRetentionPeriod": "1209600"}
        )["QueueUrl"]
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(self.options.max_receive_count)}
        self.queue_url = self.sqs.create_queue(
            QueueName=f"litellm-mlflow-events-{suffix}",
            Attributes={
                "VisibilityTimeout": str(self.options.visibility_timeout_s),
                "MaximumMessageSize": "1048576",
                "RedrivePolicy": json.dumps(redrive),
            },
        )["QueueUrl"]

    def start_consumer(self) -> None:
        """Run the real consumer handler in this process, fed by the emulated event source mapping."""
        assert self.mlflow is not None
        os.environ["MLFLOW_TRACKING_URI"] = self.mlflow.url
        os.environ["MLFLOW_EXPERIMENT_NAME"] = self.options.experiment
        os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "litellm-mlflow-consumer")
        os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "LitellmMlflowLocal")
        self.progress("starting the consumer (functions/consumer/handler.py) on the queue")
        wrap = self.options.handler_wrapper or (lambda handler: handler)
        self.consumer = SqsEventSourceEmulator(
            self.sqs,
            self.queue_url,
            wrap(load_handler()),
            batch_size=self.options.batch_size,
            batching_window_s=self.options.batching_window_s,
            function_timeout_s=self.options.function_timeout_s,
            max_backoff_s=self.options.max_backoff_s,
        ).run_in_thread()

    def _launch_proxy(self) -> None:
        import yaml

        port = self.options.proxy_port or free_port()
        if port_in_use(port):
            raise ServerStartError(f"port {port} on {LOOPBACK} is already in use; pick another with --proxy-port")
        config_path = self.workdir / "litellm_config.yaml"
        config_path.write_text(yaml.safe_dump(proxy_config(self.options.models), sort_keys=False))
        env = {
            **offline_env(),
            **FAKE_CREDENTIALS,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL_SQS": self.sqs_endpoint,
            "LITELLM_MLFLOW_QUEUE_URL": self.queue_url,
            "LITELLM_MASTER_KEY": self.master_key,
            "LITELLM_TELEMETRY": "False",
            **self.options.extra_proxy_env,
        }
        self.progress(f"starting LiteLLM proxy on {LOOPBACK}:{port} (callbacks: {CALLBACK_PATH})")
        litellm_bin = Path(sys.executable).with_name("litellm")
        cmd = [str(litellm_bin), "--config", str(config_path), "--host", LOOPBACK, "--port", str(port)]
        self.proxy_proc = spawn(cmd, self.workdir / "litellm-proxy.log", env=env, cwd=self.workdir)
        self.proxy_port = port

    # ------------------------------------------------------------------ facts

    @property
    def sqs_endpoint(self) -> str:
        return self.sqs_server.url if self.sqs_server else ""

    @property
    def proxy_url(self) -> str:
        return f"http://{LOOPBACK}:{self.proxy_port}" if self.proxy_port else ""

    @property
    def state(self) -> LocalStackState:
        return LocalStackState(
            mlflow_url=self.mlflow.url if self.mlflow else "",
            sqs_endpoint=self.sqs_endpoint,
            queue_url=self.queue_url,
            dlq_url=self.dlq_url,
            proxy_url=self.proxy_url,
            master_key=self.master_key,
            experiment=self.options.experiment,
        )

    def queue_depth(self, queue_url: str | None = None) -> int:
        """Visible plus in-flight messages."""
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=queue_url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def dlq_messages(self) -> list[dict]:
        """Peek at the DLQ (messages become visible again right away)."""
        seen: dict[str, dict] = {}
        for _ in range(100):
            batch = self.sqs.receive_message(
                QueueUrl=self.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=2, MessageAttributeNames=["All"]
            ).get("Messages", [])
            new = [m for m in batch if m["MessageId"] not in seen]
            if not new:
                break
            seen.update({m["MessageId"]: m for m in new})
        for message in seen.values():
            self.sqs.change_message_visibility(
                QueueUrl=self.dlq_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        return list(seen.values())
