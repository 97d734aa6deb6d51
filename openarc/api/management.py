"""OpenArc's own routes: what each model and replica is doing."""

from __future__ import annotations

import os
import resource
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from openarc.api.responses import json_response
from openarc.engine.engine import Engine, ServedModel


def model_status(model: ServedModel) -> dict[str, Any]:
    status = model.status
    return {
        "id": model.id,
        "status": status,
        "task": model.config.task or "llm",
        "source": model.config.source,
        "context_length": model.context_length,
        "speculative_decoding": _speculative(model),
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
                "step_seconds": round(r.stats.step_seconds, 6),
                "step_sequences": r.stats.step_sequences,
                "max_batch": r.stats.max_batch,
                "generated_tokens": r.stats.generated_tokens,
                "kv_cache_usage": r.stats.kv_cache_usage,
                "max_vision_ms": r.stats.max_vision_ms,
            }
            for r in model.replicas
        ],
    }


def _speculative(model: ServedModel) -> dict[str, Any] | None:
    """How the model decodes speculatively, with the defaults the workers apply, or None (off)."""
    spec = model.replicas[0].spec.speculative if model.replicas else None
    if spec is None:
        return None
    return {
        "mode": "prompt_lookup" if spec.prompt_lookup else "draft_model",
        "draft": spec.draft_source,
        "draft_device": None if spec.prompt_lookup else spec.draft_device,
        "num_assistant_tokens": spec.num_assistant_tokens,
        "assistant_confidence_threshold": spec.assistant_confidence_threshold,
        "max_ngram_size": spec.max_ngram_size,
    }


async def runtime(request: Request) -> Response:
    """The HTTP process itself: event-loop lag, CPU seconds and RSS (`?reset=1` clears the lag samples)."""
    monitor = request.app.state.loop_lag
    lag = monitor.summary()
    if request.query_params.get("reset") in ("1", "true"):
        monitor.samples_ms.clear()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return json_response(
        {
            "pid": os.getpid(),
            "loop_lag": lag,
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
            "rss_bytes": _rss_bytes(),
        }
    )


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


async def list_models(request: Request) -> Response:
    engine: Engine = request.app.state.engine
    return json_response({"object": "list", "data": [model_status(m) for m in engine.models.values()]})


# GET /openarc/models (list_models) is routed with its POST in `lifecycle`: one route, so a 405 lists both methods.
routes = [Route("/openarc/runtime", runtime, methods=["GET"])]
