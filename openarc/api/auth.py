"""Bearer API keys, compared in constant time; health probes (and /metrics unless configured) stay open.

Keys are never logged."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from openarc.api.errors import error_response

OPEN_PATHS = frozenset({"/health", "/ready"})


class APIKeyMiddleware:
    def __init__(self, app: ASGIApp, keys: Iterable[str], open_paths: frozenset[str] = OPEN_PATHS) -> None:
        self.app = app
        self.keys = [key.encode() for key in keys]
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or scope["path"] in self.open_paths or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        response = error_response(
            401,
            "Invalid or missing API key. Send it as 'Authorization: Bearer <key>'.",
            "authentication_error",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        header = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        token = token.strip()
        # Compare against every key so the time taken does not tell which prefix matched.
        matches = [hmac.compare_digest(token, key) for key in self.keys]
        return any(matches)
