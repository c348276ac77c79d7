"""The embedded one-machine stack: local MLflow + local SQS (queue and DLQ) + a real LiteLLM proxy + the consumer.

This module supervises the processes (start order, readiness, teardown); how they are wired together is in
`wiring`. The proxy's config names our callback exactly as the README tells users to; the consumer is the real
`functions/consumer/handler.py`, driven by an emulated SQS event source mapping; the usage rollup runs as a
periodic task (local/periodic_rollup.py) where the deployed stack has a scheduled Lambda. `make demo`, the
end-to-end test and the soak all start it through `LocalStack`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litellm_mlflow.local import wiring
from litellm_mlflow.local.event_source import Handler, SqsEventSourceEmulator, load_handler
from litellm_mlflow.local.periodic_rollup import PeriodicRollup
from litellm_mlflow.local.servers import LOOPBACK, LitellmProxyServer, MlflowServer, SqsServer, offline_env
from litellm_mlflow.local.stack_state import DEFAULT_WORKDIR, REGION, STATE_FILE, LocalStackState

Progress = Callable[[str], None]


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
    rollup_interval_s: float | None = 60.0  # None: no periodic usage rollup
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
        self.proxy: LitellmProxyServer | None = None
        self.consumer: SqsEventSourceEmulator | None = None
        self.rollup: PeriodicRollup | None = None

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
            if self.options.rollup_interval_s is not None:
                self.rollup = PeriodicRollup(self.mlflow.url, self.options.experiment, self.options.rollup_interval_s)
                self.rollup.start()
            if self.proxy is not None:
                self.proxy.wait_ready()
            self.state.save(self.workdir)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.rollup is not None:
            self.rollup.stop()
            self.rollup = None
        if self.consumer is not None:
            self.consumer.stop()
            self.consumer = None
        if self.proxy is not None:
            self.proxy.stop()
        if self.mlflow is not None:
            self.mlflow.stop()
        if self.sqs_server is not None:
            self.sqs_server.stop()
        (self.workdir / STATE_FILE).unlink(missing_ok=True)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start_sqs(self) -> None:
        import boto3

        # In-process callers (SDK benchmarks, the soak's checks) talk to the local SQS with fake credentials.
        for key, value in {**wiring.FAKE_CREDENTIALS, **offline_env(), **wiring.REGION_ENV}.items():
            os.environ.setdefault(key, value)
        self.progress(f"starting local SQS (moto) on {LOOPBACK}")
        self.sqs_server = SqsServer(self.options.sqs_port).start()
        self.sqs = boto3.client(
            "sqs",
            endpoint_url=self.sqs_server.url,
            region_name=REGION,
            aws_access_key_id=wiring.FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=wiring.FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        self.queue_url, self.dlq_url = wiring.create_queues(
            self.sqs, self.options.visibility_timeout_s, self.options.max_receive_count
        )

    def start_consumer(self) -> None:
        """Run the real consumer handler in this process, fed by the emulated event source mapping."""
        assert self.mlflow is not None
        assert self.sqs_server is not None
        os.environ.update(
            wiring.consumer_env(self.mlflow.url, self.options.experiment, self.dlq_url, self.sqs_server.url)
        )
        for key, value in wiring.CONSUMER_ENV_DEFAULTS.items():
            os.environ.setdefault(key, value)
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
        env = {
            **offline_env(),
            **wiring.proxy_env(self.sqs_endpoint, self.queue_url, self.master_key),
            **self.options.extra_proxy_env,
        }
        self.proxy = LitellmProxyServer(
            self.workdir, wiring.proxy_config(self.options.models), env, port=self.options.proxy_port
        )
        self.progress(f"starting LiteLLM proxy on {LOOPBACK}:{self.proxy.port} (callbacks: {wiring.CALLBACK_PATH})")
        self.proxy.launch()

    # ------------------------------------------------------------------ facts

    @property
    def sqs_endpoint(self) -> str:
        return self.sqs_server.url if self.sqs_server else ""

    @property
    def proxy_url(self) -> str:
        return self.proxy.url if self.proxy else ""

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
        return wiring.queue_depth(self.sqs, queue_url or self.queue_url)

    def dlq_messages(self) -> list[dict]:
        """Peek at the DLQ (messages become visible again right away)."""
        return wiring.peek_messages(self.sqs, self.dlq_url)
