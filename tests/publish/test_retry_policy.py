"""Which errors are a message's fault (isolated) and how long the sender waits between retries."""

from __future__ import annotations

from botocore.exceptions import ClientError, EndpointConnectionError

from litellm_mlflow.publish import retry_policy


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"}}, "SendMessageBatch")


def test_a_message_fault_is_recognised_with_or_without_its_namespace() -> None:
    assert retry_policy.is_message_fault(client_error("AWS.SimpleQueueService.BatchRequestTooLong"))
    assert retry_policy.is_message_fault(client_error("InvalidParameterValue"))


def test_outages_throttling_and_credentials_are_not_message_faults() -> None:
    for exc in (client_error("ThrottlingException"), client_error("AccessDenied"),
                EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), ValueError("x")):  # fmt: skip
        assert not retry_policy.is_message_fault(exc)


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    for attempt in range(40):
        full = min(retry_policy.BACKOFF_CAP_S, retry_policy.BACKOFF_BASE_S * 2**attempt)
        delays = [retry_policy.backoff(attempt) for _ in range(20)]
        assert all(full / 2 <= delay <= full for delay in delays)
    assert retry_policy.backoff(1000) <= retry_policy.BACKOFF_CAP_S
