"""Bearer keys, compared in constant time: API keys for the API, admin keys (when set) for management routes.

Health probes (and /metrics unless configured) stay open. Keys are never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from openarc.api.errors import error_response

OPEN_PATHS = frozenset({"/health", "/ready", "/openapi.json"})
MANAGEMENT_PREFIX = "/openarc/"


class APIKeyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        keys: Iterable[str],
        open_paths: frozenset[str] = OPEN_PATHS,
        admin_keys: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.admin_keys = [key.encode() for key in admin_keys]
        api_keys = [key.encode() for key in keys]
        # No API key configured: the API is open. An admin key opens every route; an API key opens the
        # management routes only while no admin key is set.
        self.api_open = not api_keys
        self.keys = api_keys + self.admin_keys
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        token = _bearer_token(scope)
        if self.admin_keys and scope["path"].startswith(MANAGEMENT_PREFIX):
            if _matches(token, self.admin_keys):
                await self.app(scope, receive, send)
                return
            if _matches(token, self.keys):
                response = error_response(
                    403, "This management route needs an admin key.", "permission_error", code="admin_key_required"
                )
                await response(scope, receive, send)
                return
            await self._refuse(scope, receive, send)
            return
        if self.api_open or _matches(token, self.keys):
            await self.app(scope, receive, send)
            return
        await self._refuse(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            401,
            "Invalid or missing API key. Send it as 'Authorization: Bearer <key>'.",
            "authentication_error",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)


def _bearer_token(scope: Scope) -> bytes | None:
    header = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
    scheme, _, token = header.partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" else None


def _matches(token: bytes | None, keys: list[bytes]) -> bool:
    if token is None:
        return False
    # Compare against every key so the time taken does not tell which prefix matched.
    matches = [hmac.compare_digest(token, key) for key in keys]
    return any(matches)
