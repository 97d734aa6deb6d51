"""Run the daemon: start the workers, serve HTTP with hypercorn, drain on SIGTERM/SIGINT, stop the workers."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
from pathlib import Path

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

from openarc.api.app import build_app
from openarc.config import Config
from openarc.engine.engine import Engine
from openarc.serving.lifecycle import reload_or_report

log = logging.getLogger("openarc")
API_KEY_ENV = "OPENARC_API_KEY"
ADMIN_KEY_ENV = "OPENARC_ADMIN_KEY"


def _keys(configured: list[str], env: str) -> list[str]:
    """Keys from the config plus a comma-separated environment variable."""
    from_env = [key.strip() for key in os.environ.get(env, "").split(",") if key.strip()]
    return [*configured, *from_env]


def api_keys(config: Config) -> list[str]:
    return _keys(config.server.api_keys, API_KEY_ENV)


def admin_keys(config: Config) -> list[str]:
    return _keys(config.server.admin_keys, ADMIN_KEY_ENV)


def key_fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


async def serve(config: Config, config_path: Path | None = None) -> None:
    server = config.server
    engine = Engine(config.models, server.log_level, server.model_cache_dir, server.models_dir)
    keys, admins = api_keys(config), admin_keys(config)
    app = build_app(engine, config.server, keys, admins, config_path)
    if keys:
        log.info("API keys required (fingerprints: %s)", ", ".join(key_fingerprint(k) for k in keys))
    else:
        log.warning("no API keys configured: every client is accepted")
    if admins:
        log.info("admin keys required on /openarc/ (fingerprints: %s)", ", ".join(key_fingerprint(k) for k in admins))

    hypercorn = HypercornConfig()
    hypercorn.bind = [bind_address(config.server.host, config.server.port)]
    # Hypercorn waits this long for in-flight responses after the shutdown trigger: our drain timeout.
    hypercorn.graceful_timeout = config.server.drain_timeout
    hypercorn.accesslog = None
    hypercorn.errorlog = logging.getLogger("hypercorn.error")
    if config.server.tls_certfile and config.server.tls_keyfile:
        hypercorn.certfile, hypercorn.keyfile = config.server.tls_certfile, config.server.tls_keyfile
    scheme = "https" if hypercorn.ssl_enabled else "http"

    shutdown = asyncio.Event()

    def begin_drain(signame: str) -> None:
        if not shutdown.is_set():
            log.info("%s received: draining in-flight requests (up to %.0fs)", signame, config.server.drain_timeout)
        app.state.draining = True
        shutdown.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, begin_drain, sig.name)
    reloads: set[asyncio.Task[None]] = set()

    def reload() -> None:
        if config_path is None:
            log.warning("SIGHUP received, but the daemon was started without a config file: nothing to reload")
            return
        log.info("SIGHUP received: reloading %s", config_path)
        task = asyncio.create_task(reload_or_report(engine, config_path, config.server.drain_timeout))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)

    engine.start()
    app.state.loop_lag.start()
    try:
        log.info("serving on %s://%s (%s event loop)", scheme, hypercorn.bind[0], _loop_name(loop))
        await hypercorn_serve(app, hypercorn, shutdown_trigger=shutdown.wait)  # type: ignore[arg-type]
    finally:
        log.info("stopping workers")
        await engine.stop()
        log.info("stopped")
