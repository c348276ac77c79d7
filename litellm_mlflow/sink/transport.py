"""Raw HTTP to the MLflow server through MLflow's own request helpers.

`http_request` with the tracking store's host credentials is exactly what MlflowClient uses, so a SageMaker ARN gets
the sagemaker-mlflow plugin's SigV4 signature and ARN header (and a plain URL its basic/bearer auth) without this
package signing anything itself. Only the endpoints MlflowClient does not batch (OTLP `/v1/traces`, `/version`) go
through here; everything else uses MlflowClient.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests
from mlflow.utils.rest_utils import MlflowHostCreds, http_request

# A request never gets less than this, even when the deadline is closer: better to try once than not at all.
MIN_REQUEST_TIMEOUT_S = 1.0


class ServerUnavailable(RuntimeError):
    """The server could not be reached or answered 5xx/429: the work is retryable (SQS redelivers it). `status`: the
    HTTP status when the server answered (None: no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RequestRejected(RuntimeError):
    """The server answered 4xx: this payload will not be accepted as is."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Transport:
    """Sends requests to one MLflow server with bounded retries and a per-request timeout."""

    host_creds: MlflowHostCreds
    request_timeout_s: float = 30.0
    max_retries: int = 1

    @classmethod
    def for_tracking_uri(cls, tracking_uri: str, **kwargs: float) -> Transport:
        """Host credentials from the tracking store MLflow resolves for this URI (plugin stores included)."""
        from mlflow.tracking._tracking_service.utils import _get_store

        store = _get_store(tracking_uri)
        get_host_creds = getattr(store, "get_host_creds", None)
        if get_host_creds is None:
            raise ValueError(f"tracking URI {tracking_uri!r} is not a remote MLflow server (no REST host credentials)")
        return cls(get_host_creds(), **kwargs)

    def timeout_for(self, deadline: float | None) -> float:
        if deadline is None:
            return self.request_timeout_s
        return max(MIN_REQUEST_TIMEOUT_S, min(self.request_timeout_s, deadline - time.monotonic()))

    def request(
        self,
        method: str,
        endpoint: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        deadline: float | None = None,
        retries: int | None = None,
    ) -> requests.Response:
        """One request; raises ServerUnavailable (retryable) or returns the response (caller checks 4xx)."""
        try:
            response = http_request(
                host_creds=self.host_creds,
                endpoint=endpoint,
                method=method,
                data=data,
                extra_headers=headers,
                timeout=self.timeout_for(deadline),
                max_retries=self.max_retries if retries is None else retries,
                backoff_factor=1,
                backoff_jitter=0.5,
                raise_on_status=False,
            )
        except requests.exceptions.RequestException as exc:
            raise ServerUnavailable(f"{method} {endpoint}: {type(exc).__name__}: {short_text(exc)}") from exc
        except Exception as exc:  # mlflow wraps exhausted retries in MlflowException
            raise ServerUnavailable(f"{method} {endpoint}: {short_text(exc)}") from exc
        if response.status_code >= 500 or response.status_code in (408, 429):
            message = f"{method} {endpoint}: HTTP {response.status_code}: {short_text(response.text)}"
            raise ServerUnavailable(message, response.status_code)
        return response


def short_text(value: object, limit: int = 300) -> str:
    """A failure reason short enough for a log line and a DLQ attribute (server answers can be whole pages)."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."
