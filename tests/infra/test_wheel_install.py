"""The README's install path, for real: `make dist`'s wheel, installed into a clean virtualenv with the newest
LiteLLM proxy that resolves, runs a real proxy (127.0.0.1, mock model) with our callback, and the call arrives as an
event on (moto's) SQS. The same wheel without extras says which extra the command needs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from litellm_mlflow.events import decode_body
from litellm_mlflow.local.servers import free_port, kill, offline_env, spawn, wait_http_ok
from litellm_mlflow.local.wiring import CALLBACK_PATH

REPO = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")
MASTER_KEY = "sk-wheel-test"


def _uv(*args: str, cwd: Path = REPO) -> str:
    result = subprocess.run([str(UV), *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_wheel_with_newest_litellm_proxy_sends_the_call_to_sqs(sqs_queue, tmp_path: Path) -> None:
    _uv("build", "--quiet", "--wheel", "--out-dir", str(tmp_path / "dist"))
    wheel = next((tmp_path / "dist").glob("litellm_mlflow-*-py3-none-any.whl"))
    venv = tmp_path / "venv"
    _uv("venv", "--quiet", "--python", sys.executable, str(venv))
    python = str(venv / "bin" / "python")

    # Without extras: the command names the extra to install, in one line, and fails.
    _uv("pip", "install", "--quiet", "--python", python, str(wheel))
    bare = subprocess.run([str(venv / "bin" / "litellm-mlflow"), "--help"], capture_output=True, text=True, check=False)
    assert bare.returncode != 0
    assert len(bare.stderr.strip().splitlines()) == 1 and "litellm-mlflow[cli]" in bare.stderr

    # The proxy side: the wheel's callback extra and the newest litellm[proxy] that resolves.
    _uv("pip", "install", "--quiet", "--python", python, f"{wheel}[callback]", "litellm[proxy]")
    installed = json.loads(_uv("pip", "list", "--format", "json", "--python", python))
    versions = {item["name"]: item["version"] for item in installed}
    assert versions["litellm-mlflow"] and versions["litellm"]
    py_typed = subprocess.run(
        [
            python,
            "-c",
            "import importlib.resources as r; print(r.files('litellm_mlflow').joinpath('py.typed').is_file())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert py_typed.stdout.strip() == "True"

    model = {
        "model_name": "mock-gpt",
        "litellm_params": {"model": "openai/gpt-4o-mini", "mock_response": "hi", "api_key": "sk-x"},
    }
    config = tmp_path / "litellm_config.yaml"
    config.write_text(yaml.safe_dump({"model_list": [model], "litellm_settings": {"callbacks": CALLBACK_PATH}}))
    port = free_port()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        **offline_env(),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_SQS": sqs_queue.endpoint,
        "LITELLM_MLFLOW_QUEUE_URL": sqs_queue.url,
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_TELEMETRY": "False",
    }
    log = tmp_path / "proxy.log"
    cmd = [str(venv / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    proc = spawn(cmd, log, env=env, cwd=tmp_path)  # cwd outside the repo: the callback comes from the wheel
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{base}/health/liveliness", 240, proc, log)
        request = urllib.request.Request(
            f"{base}/v1/chat/completions",
            data=json.dumps({"model": "mock-gpt", "messages": [{"role": "user", "content": "ping"}]}).encode(),
            headers={"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200

        deadline = time.monotonic() + 60
        messages: list[dict] = []
        while not messages and time.monotonic() < deadline:
            messages = sqs_queue.receive_all(max_empty_polls=1)
        assert messages, f"no event on the queue; proxy log:\n{log.read_text()[-3000:]}"
        event = decode_body(messages[0]["Body"], messages[0].get("MessageAttributes"))
        assert event.model_group == "mock-gpt"
    finally:
        kill(proc)
