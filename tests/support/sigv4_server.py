"""A local HTTP endpoint that accepts a request only if its AWS SigV4 signature is right.

It recomputes the signature with botocore from the request as received (method, path, query, the headers named
in SignedHeaders, body) and the known test credentials, so a missing, stale or wrong signature is caught the way
AWS would catch it. Accepted requests are forwarded to `upstream` (e.g. a local MLflow server, standing in for
SageMaker MLflow) or answered by `responder` (e.g. a fake Lambda function URL).
"""

from __future__ import annotations

import hmac
import http.client
import re
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,"
    r"\s*SignedHeaders=(?P<signed>[^,]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)
# Hop-by-hop and signing headers the upstream must not see.
_NOT_FORWARDED = {"authorization", "host", "connection", "keep-alive", "transfer-encoding", "content-length"}

Responder = Callable[[str, str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]


@dataclass
class SeenRequest:
    method: str
    path: str
    accepted: bool
    reason: str
    service: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def verify_sigv4(
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    credentials: Credentials,
    service: str,
    region: str,
) -> str | None:
    """None if the request carries a valid SigV4 signature for these credentials, else why not."""
    lower = {k.lower(): v for k, v in headers.items()}
    auth = lower.get("authorization")
    if not auth:
        return "no Authorization header"
    match = _AUTH.fullmatch(auth.strip())
    if not match:
        return f"Authorization is not SigV4: {auth[:40]}"
    if match["akid"] != credentials.access_key:
        return f"unknown access key {match['akid']}"
    if match["service"] != service:
        return f"signed for service {match['service']!r}, expected {service!r}"
    if match["region"] != region:
        return f"signed for region {match['region']!r}, expected {region!r}"
    timestamp = lower.get("x-amz-date")
    if not timestamp or not timestamp.startswith(match["date"]):
        return "X-Amz-Date missing or not matching the credential scope"
    signed = match["signed"].split(";")
    if "host" not in signed:
        return "host is not a signed header"
    missing = [name for name in signed if name not in lower]
    if missing:
        return f"signed header(s) not present: {missing}"
    request = AWSRequest(
        method=method,
        url=f"http://{lower['host']}{path}",
        headers={name: lower[name] for name in signed},
        data=body,
    )
    request.context["timestamp"] = timestamp
    signer = SigV4Auth(credentials, service, region)
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, match["signature"]):
        return "signature does not match"
    if credentials.token and lower.get("x-amz-security-token") != credentials.token:
        return "session token missing or wrong"
    return None


class SigV4CheckingServer:
    """ThreadingHTTPServer on 127.0.0.1: checks SigV4 (and required headers), then forwards or responds."""

    def __init__(
        self,
        service: str,
        region: str = "us-east-1",
        credentials: Credentials | None = None,
        upstream: str | None = None,
        responder: Responder | None = None,
        required_headers: dict[str, str] | None = None,
    ) -> None:
        if (upstream is None) == (responder is None):
            raise ValueError("give exactly one of upstream or responder")
        self.service = service
        self.region = region
        self.credentials = credentials or Credentials("testing", "testing", "testing")
        self.upstream = urllib.parse.urlsplit(upstream) if upstream else None
        self.responder = responder
        self.required_headers = {k.lower(): v for k, v in (required_headers or {}).items()}
        self.seen: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def accepted(self) -> list[SeenRequest]:
        return [r for r in self.seen if r.accepted]

    @property
    def rejected(self) -> list[SeenRequest]:
        return [r for r in self.seen if not r.accepted]

    def start(self) -> SigV4CheckingServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="sigv4-server")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SigV4CheckingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def check(self, method: str, path: str, headers: dict[str, str], body: bytes) -> str | None:
        reason = verify_sigv4(method, path, headers, body, self.credentials, self.service, self.region)
        if reason:
            return reason
        lower = {k.lower(): v for k, v in headers.items()}
        for name, value in self.required_headers.items():
            if lower.get(name) != value:
                return f"header {name} is {lower.get(name)!r}, expected {value!r}"
        return None

    def _record(self, entry: SeenRequest) -> None:
        with self._lock:
            self.seen.append(entry)

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
        assert self.upstream is not None
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            out_headers = {k: v for k, v in headers.items() if k.lower() not in _NOT_FORWARDED}
            out_headers["Host"] = self.upstream.netloc
            conn.request(method, path, body=body or None, headers=out_headers)
            response = conn.getresponse()
            data = response.read()
            reply = {k: v for k, v in response.getheaders() if k.lower() not in _NOT_FORWARDED}
            return response.status, reply, data
        finally:
            conn.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = dict(self.headers.items())
                reason = outer.check(self.command, self.path, headers, body)
                match = _AUTH.fullmatch((headers.get("Authorization") or "").strip())
                outer._record(
                    SeenRequest(
                        self.command,
                        self.path,
                        reason is None,
                        reason or "ok",
                        match["service"] if match else None,
                        {k.lower(): v for k, v in headers.items()},
                    )
                )
                if reason:
                    self._reply(403, {"Content-Type": "application/json"}, f'{{"message": "{reason}"}}'.encode())
                    return
                try:
                    if outer.responder is not None:
                        status, reply, data = outer.responder(self.command, self.path, headers, body)
                    else:
                        status, reply, data = outer._forward(self.command, self.path, headers, body)
                except OSError as exc:
                    status, reply, data = 502, {"Content-Type": "text/plain"}, f"upstream: {exc}".encode()
                self._reply(status, reply, data)

            def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        return Handler
