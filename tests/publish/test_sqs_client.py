"""The callback's SQS client signs for the right region: AWS_REGION, AWS_DEFAULT_REGION, or the queue URL's host."""

from __future__ import annotations

import pytest

from litellm_mlflow.publish.sqs_client import default_sqs_client, resolve_region

QUEUE = "https://sqs.eu-west-3.amazonaws.com/123456789012/llm-calls"


@pytest.fixture
def no_region(monkeypatch, tmp_path):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")


def test_region_from_the_queue_url_when_nothing_is_configured(no_region) -> None:
    assert default_sqs_client(QUEUE).meta.region_name == "eu-west-3"


def test_aws_default_region_wins_over_the_queue_url(no_region, monkeypatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-2")
    assert default_sqs_client(QUEUE).meta.region_name == "us-east-2"


def test_aws_region_wins_over_aws_default_region(no_region, monkeypatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-2")
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert default_sqs_client(QUEUE).meta.region_name == "ap-south-1"


def test_a_custom_endpoint_url_names_no_region() -> None:
    assert resolve_region("http://127.0.0.1:4566/000000000000/q", None, environ={}) is None
    assert resolve_region("https://sqs-fips.us-gov-west-1.amazonaws.com/1/q", None, environ={}) == "us-gov-west-1"
