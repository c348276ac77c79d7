"""Asks the presign function URL for a fresh MLflow UI link: a SigV4-signed (service `lambda`) GET of `/url`.

Signing is botocore's (`SigV4Auth` over an `AWSRequest`); the HTTP is the standard library's, which honours the
usual proxy variables. Redirects are never followed: `/url` answers JSON, and a redirect would carry the signed
headers somewhere else. Without credentials the GET goes out unsigned, which is what a local presign endpoint needs.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from litellm_mlflow.mlflow_target import TargetKind
from litellm_mlflow.presign.service import EXPIRES, SESSION, PresignedUrl

SIGNING_SERVICE = "lambda"
URL_PATH = "/url"
_FUNCTION_URL_HOST = re.compile(r"[a-z0-9]+\.lambda-url\.(?P<region>[a-z0-9-]+)\.on\.aws")


class FunctionUrlError(Exception):
    """The function URL did not hand out a link. `status` is None when it could not be reached at all; `code` is
    the presign function's own error code (e.g. `mlflow_not_ready`) when the answer came from it, else None."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: str | None = None,
        resource_status: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.resource_status = resource_status


@dataclass(frozen=True)
class SigningIdentity:
    """What to sign with: frozen botocore credentials (`access_key`, `secret_key`, `token`) and a region."""

    credentials: Any
    region: str


def region_of_function_url(url: str) -> str | None:
    """`us-east-1` for `https://<id>.lambda-url.us-east-1.on.aws/`; None for any other host (e.g. a local one)."""
    match = _FUNCTION_URL_HOST.fullmatch(urllib.parse.urlsplit(url).hostname or "")
    return match["region"] if match else None


def link_request_url(function_url: str, expires: int | None = None, session: int | None = None) -> str:
    """`<function_url>/url` with the optional duration query parameters (validated here, before any request)."""
    parts = urllib.parse.urlsplit(function_url.strip())
    query = {}
    if expires is not None:
        query[EXPIRES.parameter] = EXPIRES.parse(expires, expires)
    if session is not None:
        query[SESSION.parameter] = SESSION.parse(session, session)
    path = parts.path.rstrip("/") + URL_PATH
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, urllib.parse.urlencode(query), ""))


def signed_headers(url: str, identity: SigningIdentity) -> dict[str, str]:
    """The SigV4 headers (Authorization, X-Amz-Date, X-Amz-Security-Token) for a GET of exactly `url`."""
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(identity.credentials, SIGNING_SERVICE, identity.region).add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def fetch_link(
    function_url: str,
    identity: SigningIdentity | None,
    expires: int | None = None,
    session: int | None = None,
    timeout: float = 30.0,
) -> PresignedUrl:
    """GET `/url` from the presign function (signed when `identity` is given); FunctionUrlError when no link."""
    url = link_request_url(function_url, expires, session)
    headers = {"Accept": "application/json", "User-Agent": "litellm-mlflow"}
    if identity is not None:
        headers.update(signed_headers(url, identity))
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return _parse_link(response.read())
    except urllib.error.HTTPError as exc:
        raise _refusal(exc) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FunctionUrlError(f"could not reach {function_url}: {reason}") from None


def _parse_link(raw: bytes) -> PresignedUrl:
    try:
        body = json.loads(raw)
        return PresignedUrl(
            url=body["url"],
            kind=TargetKind(body.get("kind", TargetKind.URL)),
            expires_in_seconds=body.get("expires_in_seconds"),
            session_expiration_seconds=body.get("session_expiration_seconds"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise FunctionUrlError(f"the function URL answered 200 but not with a link ({exc})", status=200) from None


def _refusal(exc: urllib.error.HTTPError) -> FunctionUrlError:
    raw = exc.read() or b""
    body: dict[str, Any] = {}
    try:
        parsed = json.loads(raw)
        if isinstance(parsed, dict):
            body = parsed
    except ValueError:
        pass
    message = body.get("message") or body.get("Message") or raw.decode("utf-8", "replace").strip()[:300]
    if 300 <= exc.code < 400:
        message = f"unexpected redirect ({exc.code}) instead of a JSON link; not followed"
    return FunctionUrlError(
        message or exc.reason or f"HTTP {exc.code}",
        status=exc.code,
        code=body.get("error"),
        retry_after=exc.headers.get("Retry-After") if exc.headers else None,
        resource_status=body.get("status"),
    )
