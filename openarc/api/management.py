"""OpenArc's own routes: what each model and replica is doing."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from openarc.api.responses import json_response
from openarc.engine.engine import Engine, ServedModel


def _model_status(model: ServedModel) -> dict[str, Any]:
    states = {r.state.value for r in model.replicas}
    status = "ready" if states == {"ready"} else "failed" if states == {"failed"} else "loading"
    return {
        "id": model.id,
        "status": status,
        "task": model.config.task,
        "source": model.config.source,
        "context_length": model.context_length,
        "replicas": [
            {
                "name": r.name,
                "device": r.spec.device,
                "state": r.state.value,
                "error": r.error,
                "pid": r.pid,
                "load_seconds": r.load_seconds,
                "restarts": r.restarts,
                "active": r.stats.active,
                "waiting": r.stats.waiting,
                "steps": r.stats.steps,
                "max_batch": r.stats.max_batch,
                "generated_tokens": r.stats.generated_tokens,
                "kv_cache_usage": r.stats.kv_cache_usage,
            }
            for r in model.replicas
        ],
    }


async def list_models(request: Request) -> Response:
    engine: Engine = request.app.state.engine
    return json_response({"object": "list", "data": [_model_status(m) for m in engine.models.values()]})


routes = [Route("/openarc/models", list_models, methods=["GET"])]
