"""The boto3 SQS client the sender uses, built from boto3's own environment.

Region, in this order: AWS_REGION, AWS_DEFAULT_REGION (or the profile's region), then the region named in a
standard queue URL's host (https://sqs.<region>.amazonaws.com/...), so a proxy configured with only the queue URL
still signs for the right region.
"""

from __future__ import annotations

import os
import re
from typing import Any

_SQS_HOST_REGION = re.compile(r"sqs(?:-fips)?[.-]([a-z0-9-]+)\.amazonaws\.com")
CONNECT_TIMEOUT_S = 3
READ_TIMEOUT_S = 10


def queue_url_region(queue_url: str) -> str | None:
    """The region in a standard SQS queue URL's host, or None (custom endpoints, LocalStack, moto)."""
    match = _SQS_HOST_REGION.search(queue_url)
    return match.group(1) if match else None


def resolve_region(queue_url: str, session_region: str | None, environ: dict[str, str] | None = None) -> str | None:
    """AWS_REGION, then boto3's own region (AWS_DEFAULT_REGION or the profile), then the queue URL's host."""
    env = os.environ if environ is None else environ
    return env.get("AWS_REGION") or session_region or queue_url_region(queue_url)


def default_sqs_client(queue_url: str, endpoint_url: str | None = None, max_connections: int = 10) -> Any:
    """One thread-safe boto3 SQS client; credentials and AWS_ENDPOINT_URL_SQS come from boto3's environment.

    `max_connections` should be at least the number of requests the sender keeps in flight.
    """
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    config = Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"mode": "standard", "max_attempts": 3},
        max_pool_connections=max(10, max_connections),
    )
    region = resolve_region(queue_url, session.region_name)
    return session.client("sqs", region_name=region, endpoint_url=endpoint_url, config=config)
