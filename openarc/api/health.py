"""Probes: /health says the process answers; /ready says every configured model can take requests."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from openarc.api.responses import json_response
from openarc.engine.engine import Engine


async def health(request: Request) -> Response:
    return json_response({"status": "ok"})


async def ready(request: Request) -> Response:
    engine: Engine = request.app.state.engine
    models = {model.id: [r.state.value for r in model.replicas] for model in engine.models.values()}
    if request.app.state.draining:
        return json_response({"status": "draining", "models": models}, 503)
    if not engine.ready:
        return json_response({"status": "not_ready", "models": models}, 503)
    return json_response({"status": "ready", "models": models})


routes = [Route("/health", health, methods=["GET"]), Route("/ready", ready, methods=["GET"])]
