"""OpenAI-shaped error responses for every failure path, including Starlette's own 404/405 and crashes."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openarc.protocol.base import ErrorBody, ErrorResponse
from openarc.serving.errors import APIError

log = logging.getLogger("openarc.api")
_encoder = msgspec.json.Encoder()


def error_response(
    status: int,
    message: str,
    type: str,
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = ErrorResponse(error=ErrorBody(message=message, type=type, param=param, code=code))
    return Response(_encoder.encode(body), status, headers=headers, media_type="application/json")


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return error_response(exc.status, exc.message, exc.type, exc.param, exc.code, exc.headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    message = exc.detail if exc.status_code != 404 else f"Not found: {request.method} {request.url.path}"
    return error_response(exc.status_code, message, kind, headers=exc.headers)


class UnexpectedErrorMiddleware:
    """A bug becomes one logged traceback and an OpenAI-shaped 500, never a dropped connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started or scope["type"] != "http":
                return
            response = error_response(500, "The server had an error while processing your request.", "server_error")
            await response(scope, receive, send)
