"""Presign Lambda behind a function URL (AWS_IAM auth): hands out fresh presigned MLflow UI links.

GET /     -> 302 to a fresh link (a browser lands in the MLflow UI, logged in)
GET /url  -> JSON {url, expires_in_seconds, session_expiration_seconds, kind} (what `litellm-mlflow login` reads)
Query: expires (5-300 s, link validity), session (1800-43200 s, UI session); defaults from the environment.
Configuration is read at cold start, so a wrong MLFLOW_TRACKING_URI fails the first invocation with a clear message.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from litellm_mlflow.presign.service import (
    EXPIRES,
    SESSION,
    InvalidDuration,
    MlflowApiError,
    PresignedUrl,
    PresignSettings,
    presign_url,
    redact_url,
)

ROUTES = ("/", "/url")
# A presigned URL is a credential: no cache may keep it and no page may leak it through Referer.
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

logger = Logger()
# botocore logs whole response bodies (the presigned URL among them) at DEBUG: never, whatever LOG_LEVEL says.
logging.getLogger("botocore").setLevel(max(logging.getLogger("botocore").level, logging.INFO))

settings = PresignSettings.from_env(os.environ)
sagemaker = boto3.client("sagemaker", region_name=settings.target.region) if settings.target.is_sagemaker else None
app = LambdaFunctionUrlResolver()


@app.get("/")
def redirect_to_ui() -> Response:
    link = _fresh_link()
    return Response(status_code=302, headers={"Location": link.url, **NO_STORE}, body="")


@app.get("/url")
def url_as_json() -> Response:
    link = _fresh_link()
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, headers=NO_STORE, body=link.to_json())


def _fresh_link() -> PresignedUrl:
    event = app.current_event
    expires = EXPIRES.parse(event.get_query_string_value(EXPIRES.parameter), settings.expires_seconds)
    session = SESSION.parse(event.get_query_string_value(SESSION.parameter), settings.session_seconds)
    link = presign_url(settings.target, sagemaker, expires, session)
    logger.info(
        "issued a presigned MLflow UI URL",
        extra={
            "url": redact_url(link.url),
            "kind": str(link.kind),
            "expires_in_seconds": link.expires_in_seconds,
            "session_expiration_seconds": link.session_expiration_seconds,
            "caller": event.request_context.authorizer.iam.user_arn if event.request_context.authorizer else None,
        },
    )
    return link


def _error(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        headers={**NO_STORE, **(headers or {})},
        body=body,
    )


@app.exception_handler(InvalidDuration)
def invalid_duration(exc: InvalidDuration) -> Response:
    return _error(400, {"error": "invalid_parameter", "parameter": exc.parameter, "message": str(exc)})


@app.exception_handler(MlflowApiError)
def sagemaker_refused(exc: MlflowApiError) -> Response:
    logger.warning("could not presign", extra={"error": exc.code, "status": exc.resource_status, "reason": exc.message})
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return _error(exc.status, exc.to_json(), headers)


@app.not_found
def no_such_route(_: NotFoundError) -> Response:
    """The resolver answers 404 for a known path with another method too; tell those apart (405 + Allow)."""
    event = app.current_event
    if event.path in ROUTES:
        message = f"{event.http_method} is not allowed on {event.path}: use GET"
        return _error(405, {"error": "method_not_allowed", "message": message}, {"Allow": "GET"})
    message = f"no such path {event.path[:100]!r}: GET / redirects to the MLflow UI, GET /url returns the link as JSON"
    return _error(404, {"error": "not_found", "message": message})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.LAMBDA_FUNCTION_URL)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
