"""Start the real daemon (`python -m openarc serve`) on 127.0.0.1 for end-to-end tests, and stop it."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import yaml

READY_TIMEOUT_SECONDS = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    api_key: str | None = None
    clients: list[openai.OpenAI] = field(default_factory=list)
    # The CA that signed the server's TLS certificate: set for a daemon serving HTTPS.
    tls_ca: Path | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_ca else 'http'}://127.0.0.1:{self.port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=str(self.tls_ca)) if self.tls_ca else True

    def client(self, **kwargs: Any) -> openai.OpenAI:
        """An SDK client, closed when the server stops (no socket left for the GC to warn about)."""
        if self.tls_ca:
            kwargs.setdefault("http_client", httpx.Client(verify=self.verify))
        kwargs.setdefault("api_key", self.api_key or "unused")
        client = openai.OpenAI(base_url=f"{self.url}/v1", max_retries=0, **kwargs)
        self.clients.append(client)
        return client

    def async_client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=self.api_key or "unused", max_retries=0, **kwargs)

    def http(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, verify=self.verify)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def status(self) -> dict[str, Any]:
        """The daemon's view of its models and worker counters (GET /openarc/models), keyed by model id."""
        with self.http() as http:
            data = http.get("/openarc/models").json()["data"]
        return {model["id"]: model for model in data}

    def wait_until(self, predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
        """Poll the daemon's state until `predicate()` holds: waiting on state, never on a fixed sleep."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}\n--- server log ---\n{self.log()}")
            time.sleep(0.05)


def write_config(path: Path, models: list[dict[str, Any]], server: dict[str, Any] | None = None) -> Path:
    path.write_text(yaml.safe_dump({"server": server or {}, "models": models}))
    return path


@contextmanager
def run_server(
    config: Path,
    tmp_dir: Path,
    env: dict[str, str] | None = None,
    api_key: str | None = None,
    tls_ca: Path | None = None,
) -> Iterator[Server]:
    port = free_port()
    log_path = tmp_dir / f"server-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "openarc", "serve", "--config", str(config), "--port", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    server = Server(process, port, log_path, api_key, tls_ca=tls_ca)
    try:
        server.wait_until(lambda: _ready(server), READY_TIMEOUT_SECONDS, "the server to be ready")
        yield server
    finally:
        stop(server)


def _ready(server: Server) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"server exited with {server.process.returncode}\n{server.log()}")
    try:
        return httpx.get(f"{server.url}/ready", timeout=2, verify=server.verify).status_code == 200
    except httpx.TransportError:
        return False


def stop(server: Server) -> int:
    for client in server.clients:
        client.close()
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(60)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode
