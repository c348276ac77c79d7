"""The callback inside a real LiteLLM proxy: loaded from the config line, flushed by the proxy's SIGTERM shutdown.

uvicorn re-raises SIGTERM after its graceful shutdown, which ends the process without atexit handlers; only the
proxy-shutdown hook gets these events out. A long batch linger keeps them buffered until then.
"""

from __future__ import annotations

import json
import signal
import sys
import urllib.request
from pathlib import Path

from litellm_mlflow.local.servers import free_port, kill, spawn, wait_http_ok
from tests.support.sqs_events import all_events

MASTER_KEY = "sk-master-" + "k" * 24
CONFIG = """
model_list:
  - model_name: mock-gpt
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: sk-fake-provider-key
      mock_response: "hello from the mock"
litellm_settings:
  callbacks: litellm_mlflow.callback.sqs_logger
"""


def chat(port: int, text: str) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=json.dumps({"model": "mock-gpt", "messages": [{"role": "user", "content": text}]}).encode(),
        headers={"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200


def test_proxy_sigterm_flushes_buffered_events(sqs_queue, tmp_path: Path) -> None:
    config = tmp_path / "litellm_config.yaml"
    config.write_text(CONFIG)
    port = free_port()
    log = tmp_path / "proxy.log"
    env = {"LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_MLFLOW_BATCH_LINGER_MS": "60000"}
    proc = spawn(
        [str(Path(sys.executable).parent / "litellm"), "--config", str(config),
         "--host", "127.0.0.1", "--port", str(port)],
        log, env=env,
    )  # fmt: skip
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health/liveliness", 180, proc, log)
        for i in range(9):  # fewer than one batch: the sender lingers instead of sending
            chat(port, f"question {i}")
        assert sqs_queue.receive_all(max_empty_polls=1) == []
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=90)
    finally:
        kill(proc)
    assert proc.returncode == -signal.SIGTERM  # uvicorn re-raised the signal: no atexit handler ran
    messages = sqs_queue.receive_all()
    decoded = all_events(messages)
    assert sorted(e.messages[0]["content"] for e in decoded) == [f"question {i}" for i in range(9)]
    assert all(e.model_group == "mock-gpt" and e.status == "success" for e in decoded)
    assert not any(MASTER_KEY in m["Body"] or "sk-fake-provider-key" in m["Body"] for m in messages)
