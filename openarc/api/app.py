"""The Starlette application: routes, API-key middleware and OpenAI-shaped error handlers."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from openarc.api import health, management, openai
from openarc.api.auth import APIKeyMiddleware
from openarc.api.body_limit import BodyLimitMiddleware
from openarc.api.errors import UnexpectedErrorMiddleware, api_error, http_error
from openarc.api.loop_lag import LoopLagMonitor
from openarc.engine.engine import Engine
from openarc.serving.chat import ChatServing
from openarc.serving.completions import CompletionServing
from openarc.serving.errors import APIError


def build_app(engine: Engine, api_keys: Sequence[str] = (), max_request_bytes: int = 16 * 1024 * 1024) -> Starlette:
    app = Starlette(
        routes=[*openai.routes, *health.routes, *management.routes],
        middleware=[
            Middleware(UnexpectedErrorMiddleware),
            Middleware(APIKeyMiddleware, keys=list(api_keys)),
            Middleware(BodyLimitMiddleware, max_bytes=max_request_bytes),
        ],
        exception_handlers={APIError: api_error, HTTPException: http_error},
    )
    app.state.engine = engine
    app.state.chat = ChatServing(engine)
    app.state.completions = CompletionServing(engine)
    app.state.draining = False
    app.state.loop_lag = LoopLagMonitor()
    return app
