"""The Starlette application: routes, middleware (errors, metrics, API keys, body limit) and error handlers."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from openarc.api import health, management, metrics, openai
from openarc.api.auth import OPEN_PATHS, APIKeyMiddleware
from openarc.api.body_limit import BodyLimitMiddleware
from openarc.api.errors import UnexpectedErrorMiddleware, api_error, http_error
from openarc.api.loop_lag import LoopLagMonitor
from openarc.config import ServerConfig
from openarc.engine.engine import Engine
from openarc.metrics import Metrics
from openarc.serving.chat import ChatServing
from openarc.serving.completions import CompletionServing
from openarc.serving.errors import APIError


def build_app(engine: Engine, server: ServerConfig, api_keys: Sequence[str] = ()) -> Starlette:
    observed = Metrics()
    observed.watch(engine)
    open_paths = OPEN_PATHS if server.metrics_require_key else OPEN_PATHS | {"/metrics"}
    app = Starlette(
        routes=[*openai.routes, *health.routes, *management.routes, *metrics.routes],
        # Outermost first: the counter also sees the 500s the error middleware produces.
        middleware=[
            Middleware(metrics.ResponseCounterMiddleware, metrics=observed),
            Middleware(UnexpectedErrorMiddleware),
            Middleware(APIKeyMiddleware, keys=list(api_keys), open_paths=open_paths),
            Middleware(BodyLimitMiddleware, max_bytes=server.max_request_bytes),
        ],
        exception_handlers={APIError: api_error, HTTPException: http_error},
    )
    app.state.engine = engine
    app.state.metrics = observed
    app.state.chat = ChatServing(engine, observed)
    app.state.completions = CompletionServing(engine, observed)
    app.state.draining = False
    app.state.loop_lag = LoopLagMonitor()
    return app
