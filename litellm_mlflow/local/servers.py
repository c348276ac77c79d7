"""Local servers, on 127.0.0.1 only: a real MLflow server (sqlite), a moto SQS endpoint, a real LiteLLM proxy.

Used by `litellm-mlflow demo`, the test fixtures and the benchmarks, so all three exercise the same servers.
Every process started here is killed with its whole process group on `stop()` and at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

LOOPBACK = "127.0.0.1"

_LIVE_PROCESSES: set[subprocess.Popen] = set()


class ServerStartError(RuntimeError):
    """A local server did not come up in time; the message carries the tail of its log."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _port_taken(message: str) -> bool:
    """A start failure that says the port was taken (our own check, gunicorn's or uvicorn's words)."""
    lowered = message.lower()
    return "already in use" in lowered or "connection in use" in lowered or "errno 98" in lowered


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_http_ok(url: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Poll `url` until it answers 2xx, the process dies, or the deadline passes."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerStartError(f"{url}: process exited with {proc.returncode}.{_log_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if 200 <= response.status < 300:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            last_error = str(exc)
        time.sleep(0.1)
    raise ServerStartError(f"{url} not ready after {timeout:.0f}s ({last_error}).{_log_tail(log)}")


def _log_tail(log: Path | None, lines: int = 30) -> str:
    if log is None or not log.exists():
        return ""
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return "\n--- last log lines ---\n" + "\n".join(tail)


def spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """Start a process in its own group, output to `log`, registered for cleanup at exit."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    _LIVE_PROCESSES.add(proc)
    return proc


def kill(proc: subprocess.Popen | None, timeout: float = 10.0, hard: bool = False) -> None:
    """Stop a spawned process and its children; SIGKILL at once when `hard`, else after `timeout`."""
    if proc is None:
        return
    _LIVE_PROCESSES.discard(proc)
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL if hard else signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so `finally` blocks and atexit run and no server outlives its parent
    (Python's default SIGTERM handling skips both). Call from the main thread of a command."""

    def _raise(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _raise)


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE_PROCESSES):
        kill(proc, timeout=5)


def offline_env() -> dict[str, str]:
    """Environment that keeps MLflow and LiteLLM from reaching for the internet."""
    return {
        "MLFLOW_MODEL_CATALOG_URI": "",
        # The server's background job runner keeps a core busy and slows trace ingest 10x on a small machine.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 with a sqlite store and artifacts on disk.

    `stop()` then `start()` keeps the same port and data, so tests can take MLflow down mid-run.
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        workers: int = 1,
        python: Path | None = None,
        backend_store_uri: str | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        # A port the OS picked can be taken by another process before the server binds it: the first start then
        # tries another one (never after a start succeeded: clients hold the URL).
        self._may_move = port is None
        self.workers = workers
        # Another interpreter runs another MLflow version (see local/mlflow_versions.py); default: this one's.
        self.python = Path(python) if python else Path(sys.executable)
        self.backend_store_uri = backend_store_uri or f"sqlite:///{self.workdir / 'mlflow.db'}"
        self.proc: subprocess.Popen | None = None
        self.log = self.workdir / "mlflow-server.log"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 120.0) -> MlflowServer:
        for attempt in range(3):
            try:
                self.launch()
                self.wait_ready(timeout)
                break
            except ServerStartError as exc:
                if not self._may_move or attempt == 2 or not _port_taken(str(exc)):
                    raise
                kill(self.proc, hard=True)
                self.port = free_port()
        self._may_move = False
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        wait_http_ok(f"{self.url}/health", timeout, self.proc, self.log)

    def launch(self) -> None:
        """Start the process without waiting, so other servers can start alongside (see `wait_ready`)."""
        if port_in_use(self.port):
            raise ServerStartError(f"port {self.port} on {LOOPBACK} is already in use; pick another with --port")
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(self.python), "-m", "mlflow", "server",
            "--host", LOOPBACK,
            "--port", str(self.port),
            "--workers", str(self.workers),
            "--backend-store-uri", self.backend_store_uri,
            "--artifacts-destination", str(self.workdir / "artifacts"),
        ]  # fmt: skip
        self.proc = spawn(cmd, self.log, env=offline_env())

    def stop(self, hard: bool = False) -> None:
        kill(self.proc, hard=hard)
        self.proc = None
        deadline = time.monotonic() + 15
        while port_in_use(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self, timeout: float = 120.0) -> None:
        self.stop()
        self.start(timeout)

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def speed_up_moto_sqs() -> None:
    """Make moto's SQS usable with thousands of messages in a queue (the soak, a backed-up demo).

    moto 5.2 recomputes every queue attribute, including O(n) message counts, for each message it sends or
    receives (the retention-period check and the content-based-deduplication check read `queue.attributes`), and
    its clock helper is slow: with 3,000 queued messages one ReceiveMessage took ~2 s. Reading the two attributes
    directly and using a cheaper clock keeps SQS semantics and makes each call milliseconds.
    """
    import time as _time

    from moto.core import utils as core_utils
    from moto.sqs import models

    if getattr(models, "_litellm_mlflow_fast", False):
        return
    original_millis = core_utils.unix_time_millis

    def unix_time_millis(dt: object = None) -> float:
        return _time.time() * 1000.0 if dt is None else original_millis(dt)

    def is_message_valid_based_on_retention_period(self, queue_name: str, message) -> bool:
        queue = self.get_queue(queue_name)
        return int(queue.message_retention_period) + message.sent_timestamp / 1000 > _time.time()

    models.unix_time_millis = unix_time_millis
    models.SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
    models._litellm_mlflow_fast = True


class SqsServer:
    """moto's SQS on 127.0.0.1 in this process (`ThreadedMotoServer`).

    Queue contents live in moto's in-process backend, so `stop()` / `start()` simulates an outage
    without losing what was already accepted.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._server = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 30.0) -> SqsServer:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per SQS call otherwise
        speed_up_moto_sqs()

        if port_in_use(self.port):
            raise ServerStartError(f"port {self.port} on {LOOPBACK} is already in use; pick another with --port")
        self._server = ThreadedMotoServer(ip_address=LOOPBACK, port=self.port, verbose=False)
        self._server.start()
        wait_http_ok(f"{self.url}/moto-api/data.json", timeout)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> SqsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LitellmProxyServer:
    """A real `litellm` proxy on 127.0.0.1 with the given config (written as YAML into `workdir`) and environment."""

    def __init__(
        self,
        workdir: Path,
        config: dict,
        env: dict[str, str],
        port: int | None = None,
        workers: int = 1,
        name: str = "litellm-proxy",
    ) -> None:
        self.workdir = Path(workdir)
        self.config = config
        self.env = env
        self.port = port or free_port()
        self.workers = workers
        self.proc: subprocess.Popen | None = None
        self.log = self.workdir / f"{name}.log"
        self.config_path = self.workdir / f"{name}-config.yaml"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def launch(self) -> None:
        """Start the process without waiting (the proxy takes seconds to import; see `wait_ready`)."""
        import yaml

        if port_in_use(self.port):
            raise ServerStartError(f"port {self.port} on {LOOPBACK} is already in use; pick another with --proxy-port")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        litellm_bin = Path(sys.executable).with_name("litellm")
        cmd = [str(litellm_bin), "--config", str(self.config_path), "--host", LOOPBACK, "--port", str(self.port)]
        if self.workers > 1:
            # uvicorn restarts a worker that does not answer its health check within 5 s, which a worker still
            # importing LiteLLM on a busy machine never does: it would restart workers forever.
            cmd += ["--num_workers", str(self.workers), "--timeout_worker_healthcheck", "300"]
        self.proc = spawn(cmd, self.log, env=self.env, cwd=self.workdir)

    def wait_ready(self, timeout: float = 180.0) -> None:
        wait_http_ok(f"{self.url}/health/liveliness", timeout, self.proc, self.log)

    def start(self, timeout: float = 180.0) -> LitellmProxyServer:
        self.launch()
        self.wait_ready(timeout)
        return self

    def stop(self, hard: bool = False) -> None:
        kill(self.proc, hard=hard)
        self.proc = None
