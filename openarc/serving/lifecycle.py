"""Models loaded, unloaded and reloaded at runtime: a spec checked like a YAML entry, and the config file re-applied."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from openarc.config import ConfigError, ModelConfig, available_devices, check_model, load_config, with_path
from openarc.engine.engine import Engine, ServedModel
from openarc.engine.errors import ModelExists
from openarc.serving.errors import APIError, invalid_request, model_not_found

log = logging.getLogger("openarc.lifecycle")


def conflict(message: str) -> APIError:
    return APIError(409, message, "invalid_request_error", "id", "model_exists")


def parse_model_spec(body: bytes, base: Path, devices: Callable[[], Sequence[str]] = available_devices) -> ModelConfig:
    """A model spec shaped exactly like an entry of the config's `models`, checked the same way (400 with the key
    path on error). Relative paths are relative to `base` (the config file's folder)."""
    try:
        model = msgspec.json.decode(body, type=ModelConfig)
    except msgspec.ValidationError as exc:
        path, _, what = with_path(str(exc)).partition(": ")
        raise invalid_request(f"{path}: {what}", _param(path)) from None
    except msgspec.DecodeError as exc:
        raise invalid_request(f"The body is not valid JSON: {exc}") from None
    problems = check_model(model, "$", base, devices())
    if problems:
        raise invalid_request("; ".join(problems), _param(problems[0].partition(":")[0]))
    return model


def _param(path: str) -> str | None:
    """`$.scheduler.max_num_seqs` → `scheduler.max_num_seqs`; the whole spec (`$`) → None."""
    return path.removeprefix("$").removeprefix(".") or None


def load_model(engine: Engine, model: ModelConfig) -> ServedModel:
    try:
        return engine.load(model)
    except ModelExists as exc:
        raise conflict(str(exc)) from None


async def unload_model(engine: Engine, model_id: str, drain: bool, drain_timeout: float | None) -> None:
    if engine.get(model_id) is None:
        raise model_not_found(model_id)
    await engine.unload(model_id, drain=drain, drain_timeout=drain_timeout)


async def reload_config(engine: Engine, path: Path, drain_timeout: float | None) -> dict[str, Any]:
    """Apply the config file's `models` again: load new ids, unload missing ones (draining them), replace changed
    ones, and leave identical ones running. An invalid file changes nothing (ConfigError). Server settings are
    not applied: they need a restart."""
    # In a thread: checking the file asks OpenVINO for the devices and reads chat templates and TLS files.
    config = await asyncio.to_thread(load_config, path)
    wanted = {model.id: model for model in config.models}
    current = {model_id: model.config for model_id, model in engine.models.items()}
    removed = [model_id for model_id in current if model_id not in wanted]
    changed = [model_id for model_id in current if model_id in wanted and wanted[model_id] != current[model_id]]
    added = [model_id for model_id in wanted if model_id not in current]
    unchanged = [model_id for model_id in current if model_id in wanted and model_id not in changed]
    await asyncio.gather(
        *(engine.unload(model_id, drain=True, drain_timeout=drain_timeout) for model_id in removed + changed)
    )
    for model_id in changed + added:
        engine.load(wanted[model_id])
    report = {"added": added, "removed": removed, "changed": changed, "unchanged": unchanged}
    log.info("config %s reloaded: %s", path, report)
    return report


async def reload_or_report(engine: Engine, path: Path, drain_timeout: float | None) -> None:
    """SIGHUP's reload: an invalid file is logged and changes nothing."""
    try:
        await reload_config(engine, path, drain_timeout)
    except ConfigError as exc:
        log.error("config reload refused, nothing changed:\n%s", exc)
