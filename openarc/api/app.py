"""The Starlette application: routes, middleware (errors, metrics, API keys, body limit) and error handlers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from openarc.api import health, lifecycle, management, metrics, openai, openapi
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
from openarc.serving.images import ImageLimits


def build_app(
    engine: Engine,
    server: ServerConfig,
    api_keys: Sequence[str] = (),
    admin_keys: Sequence[str] = (),
    config_path: Path | None = None,
) -> Starlette:
    observed = Metrics()
    observed.watch(engine)
    open_paths = OPEN_PATHS if server.metrics_require_key else OPEN_PATHS | {"/metrics"}
    app = Starlette(
        routes=[
            *openai.routes,
            *health.routes,
            *management.routes,
            *lifecycle.routes,
            *metrics.routes,
            *openapi.routes,
        ],
        # Outermost first: the counter also sees the 500s the error middleware produces; CORS answers preflights
        # before the key check (browsers send no key with them) and adds its headers to error responses too.
        middleware=[
            Middleware(metrics.ResponseCounterMiddleware, metrics=observed),
            *_cors(server.cors_allow_origins),
            Middleware(UnexpectedErrorMiddleware),
            Middleware(APIKeyMiddleware, keys=list(api_keys), open_paths=open_paths, admin_keys=list(admin_keys)),
            Middleware(BodyLimitMiddleware, max_bytes=server.max_request_bytes),
        ],
        exception_handlers={APIError: api_error, HTTPException: http_error},
    )
    app.state.engine = engine
    app.state.server = server
    # The YAML file POST /openarc/config/reload and SIGHUP read again (None: nothing to reload).
    app.state.config_path = config_path
    app.state.metrics = observed
    image_limits = ImageLimits(
        max_bytes=server.max_image_bytes,
        max_pixels=server.max_image_pixels,
        max_side=server.max_image_side,
        fetch_timeout=server.image_fetch_timeout,
        allow_private_urls=server.allow_private_image_urls,
    )
    app.state.chat = ChatServing(engine, observed, server.request_timeout, image_limits)
    app.state.completions = CompletionServing(engine, observed, server.request_timeout)
    app.state.draining = False
    app.state.loop_lag = LoopLagMonitor(busy=lambda: engine.in_flight > 0)
    return app


def _cors(origins: Sequence[str]) -> list[Middleware]:
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_methods=["GET", "POST", "DELETE"],
            # Any request header: the OpenAI JS SDK adds its own x-stainless-* headers from browsers.
            allow_headers=["*"],
            max_age=600,
        )
    ]
