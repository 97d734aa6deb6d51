"""Runtime model management: load, unload, info, config reload, and the machine's devices."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from openarc.api.management import list_models, model_status
from openarc.api.responses import json_response
from openarc.config import ConfigError, ServerConfig
from openarc.devices import UnknownDevice, device_properties, list_devices
from openarc.engine.engine import Engine
from openarc.model_files import architecture
from openarc.serving import lifecycle
from openarc.serving.errors import APIError, invalid_request, model_not_found


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _config_dir(request: Request) -> Path:
    path: Path | None = request.app.state.config_path
    return path.resolve().parent if path is not None else Path.cwd()


async def load_model(request: Request) -> Response:
    # In a thread: checking the spec asks OpenVINO for the devices and reads the model's files.
    spec = await asyncio.to_thread(lifecycle.parse_model_spec, await request.body(), _config_dir(request))
    model = lifecycle.load_model(_engine(request), spec)
    # 202: the workers load in the background; GET /openarc/models shows when it is ready.
    return json_response(model_status(model), 202)


async def unload_model(request: Request) -> Response:
    model_id = request.path_params["model_id"]
    drain = request.query_params.get("drain", "false").lower()
    if drain not in ("true", "false", "1", "0"):
        raise invalid_request("`drain` must be true or false.", "drain")
    server: ServerConfig = request.app.state.server
    await lifecycle.unload_model(_engine(request), model_id, drain in ("true", "1"), server.drain_timeout)
    return json_response({"id": model_id, "status": "unloaded"})


async def model_info(request: Request) -> Response:
    model = _engine(request).get(request.path_params["model_id"])
    if model is None:
        raise model_not_found(request.path_params["model_id"])
    loaded = next((r for r in model.replicas if r.tokenizer), None)
    # An hf:// source has local files once a worker has fetched them.
    local = loaded.source_path if loaded is not None and loaded.source_path else model.config.source
    try:
        files = await asyncio.to_thread(architecture, local)
    except (OSError, ValueError) as exc:
        files = {"error": f"cannot read the model's files: {exc}"}
    info: dict[str, Any] = {
        "id": model.id,
        "status": model.status,
        "source": model.config.source,
        "local_path": local,
        "architecture": files,
        "context_length": model.context_length,
        # Until a worker has loaded the model, its tokenizer and defaults are not known.
        "tokenizer": None if loaded is None else {**loaded.tokenizer, "chat_template": loaded.chat_template},
        "generation_defaults": {
            "model": None if loaded is None else loaded.generation_defaults,
            "configured": {k: v for k, v in _fields(model.config.generation).items() if v is not None},
        },
    }
    return json_response(info)


def _fields(struct: Any) -> dict[str, Any]:
    return {name: getattr(struct, name) for name in struct.__struct_fields__}


async def reload_config(request: Request) -> Response:
    path: Path | None = request.app.state.config_path
    if path is None:
        raise invalid_request("The daemon was started without a config file: there is nothing to reload.")
    server: ServerConfig = request.app.state.server
    try:
        report = await lifecycle.reload_config(_engine(request), path, server.drain_timeout)
    except ConfigError as exc:
        raise APIError(
            400, f"Config not reloaded, nothing changed: {exc}", "invalid_request_error", None, "invalid_config"
        ) from None
    return json_response(report)


async def devices(request: Request) -> Response:
    return json_response({"object": "list", "data": await asyncio.to_thread(list_devices)})


async def device(request: Request) -> Response:
    name = request.path_params["name"]
    try:
        properties = await asyncio.to_thread(device_properties, name)
    except UnknownDevice:
        raise APIError(
            404,
            f"No OpenVINO device named {name!r} on this machine.",
            "invalid_request_error",
            "name",
            "device_not_found",
        ) from None
    return json_response({"name": name, "properties": properties})


async def models(request: Request) -> Response:
    return await (load_model(request) if request.method == "POST" else list_models(request))


routes = [
    Route("/openarc/models", models, methods=["GET", "POST"]),
    Route("/openarc/models/{model_id:path}/info", model_info, methods=["GET"]),
    Route("/openarc/models/{model_id:path}", unload_model, methods=["DELETE"]),
    Route("/openarc/config/reload", reload_config, methods=["POST"]),
    Route("/openarc/devices", devices, methods=["GET"]),
    Route("/openarc/devices/{name}", device, methods=["GET"]),
]
