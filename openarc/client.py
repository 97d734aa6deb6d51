"""A small client for a running daemon's management API, for the CLI (stdlib HTTP: no client library needed)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

URL_ENV = "OPENARC_URL"
DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT_SECONDS = 120.0


class DaemonError(Exception):
    """The daemon could not be reached, or answered with an error; the message says which, for a human."""


def default_key() -> str | None:
    return os.environ.get("OPENARC_ADMIN_KEY") or (os.environ.get("OPENARC_API_KEY", "").split(",")[0] or None)


class DaemonClient:
    def __init__(self, url: str | None = None, api_key: str | None = None) -> None:
        self.url = (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else default_key()

    def request(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> Any:
        url = self.url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise DaemonError(_error_message(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DaemonError(
                f"cannot reach the daemon at {self.url} ({reason}); is `openarc serve` running? "
                f"(set --url or ${URL_ENV})"
            ) from None

    def get(self, path: str, query: dict[str, str] | None = None) -> Any:
        return self.request("GET", path, query=query)


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        error = json.loads(exc.read())["error"]
        where = f" ({error['param']})" if error.get("param") else ""
        return f"{exc.code}: {error['message']}{where}"
    except (ValueError, KeyError, TypeError):
        return f"{exc.code}: {exc.reason}"
