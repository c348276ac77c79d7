"""A real LiteLLM proxy with our callback, hit the way an attacker or an unlucky client would: credentials in headers,
body metadata and content never reach SQS in clear, and content that cannot travel raw still arrives as an event."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from litellm_mlflow.local import wiring
from litellm_mlflow.local.servers import LitellmProxyServer, offline_env
from tests.publish.test_litellm_logger_sqs import wait_until
from tests.support.sqs_events import all_events, body_text, message_events

MASTER_KEY = "sk-master-hostile-test-0123456789"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.bWFsbG9yeS1zaWduYXR1cmUtMTIz"
ASIA = "ASIAMALLORYEXAMPLE12"
HEADER_SECRETS = {"X-Functions-Key": "fn-key-value-77777", "X-Auth-Key": "auth-key-value-88888"}
BODY_SECRET = "openai-key-in-metadata-99999"
CLEAR_VALUES = (*HEADER_SECRETS.values(), BODY_SECRET, JWT, ASIA, MASTER_KEY)


@pytest.fixture
def proxy(sqs_queue, tmp_path):
    config = wiring.proxy_config()
    config["general_settings"] = {"forward_client_headers_to_llm_api": True}
    env = {**offline_env(), **wiring.proxy_env(sqs_queue.endpoint, sqs_queue.url, MASTER_KEY), "LITELLM_LOG": "ERROR"}
    server = LitellmProxyServer(tmp_path, config, env, name="hostile-proxy").start()
    yield server
    server.stop()


def post(proxy: LitellmProxyServer, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(f"{proxy.url}/chat/completions", data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {MASTER_KEY}")
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{exc.code}: {exc.read()[:300]!r}") from None


def test_credentials_never_leave_and_hostile_content_still_arrives(proxy, sqs_queue) -> None:
    metadata = {"openai_key": BODY_SECRET, "tags": ["hostile"]}
    prompts = {
        "credentials": f"authorization: bearer {JWT}, temporary key {ASIA}",
        "noncharacter": "before \ufffe after",
    }
    for tag, prompt in prompts.items():
        document = {"model": "gpt-4o-mini", "metadata": {**metadata, "tags": [tag]},
                    "messages": [{"role": "user", "content": prompt}]}  # fmt: skip
        # (A lone surrogate in the body is refused by the proxy itself with a 400; the SDK path covers it.)
        body = json.dumps(document).encode()
        assert post(proxy, body, HEADER_SECRETS) == 200

    received: list[dict] = []

    def all_arrived() -> bool:
        received.extend(sqs_queue.receive_all(max_empty_polls=1))
        return len(all_events(received)) >= len(prompts)

    wait_until(all_arrived, timeout=60, what="the proxy's events in SQS")
    assert len(all_events(received)) == len(prompts)
    by_tag = {}
    for message in received:
        assert not any(value in body_text(message) for value in CLEAR_VALUES), "a credential reached SQS in clear"
        for event in message_events(message):
            by_tag[event.request_tags[0]] = event
    assert set(by_tag) == set(prompts)
    assert "[REDACTED]" in json.dumps(by_tag["credentials"].messages)
    assert by_tag["noncharacter"].messages[0]["content"] == prompts["noncharacter"]
    assert all(event.event_id == event.call_id for event in by_tag.values())
