"""A loopback Hugging Face Hub: the routes `huggingface_hub` downloads through, serving local folders as repos.

Point `HF_ENDPOINT` at it and the real download code runs (repo info, tree listing, HEAD for metadata, ranged GETs
to resume). `cut_next(path, after)` makes the next GET of a file send only its first bytes and drop the connection.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHUNK = 1 << 20


@dataclass
class Repo:
    folder: Path
    # Served files: path in the repo → local file.
    files: dict[str, Path]
    sha: str


@dataclass
class FakeHub:
    repos: dict[str, Repo] = field(default_factory=dict)
    # Every GET of a file: (repo, path, the Range header or None).
    downloads: list[tuple[str, str, str | None]] = field(default_factory=list)
    cuts: dict[tuple[str, str], int] = field(default_factory=dict)
    url: str = ""

    def add(self, repo_id: str, folder: Path, files: list[Path] | None = None) -> None:
        chosen = files if files is not None else sorted(p for p in folder.iterdir() if p.is_file())
        sha = hashlib.sha1(repo_id.encode()).hexdigest()
        self.repos[repo_id] = Repo(folder, {p.name: p for p in chosen}, sha)

    def cut_next(self, repo_id: str, path: str, after: int) -> None:
        self.cuts[(repo_id, path)] = after


def _etag(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha256(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def _json(self, payload: object, status: int = 200) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _not_found(self) -> None:
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _route(self) -> tuple[str, Repo, str] | None:
            """(kind, repo, rest) for /api/models/{repo}/revision/{rev}, /api/models/{repo}/tree/{rev}, and
            /{repo}/resolve/{rev}/{path}."""
            path = unquote(urlsplit(self.path).path)
            for repo_id, repo in hub.repos.items():
                for kind, prefix in (
                    ("info", f"/api/models/{repo_id}/revision/"),
                    ("tree", f"/api/models/{repo_id}/tree/"),
                    ("file", f"/{repo_id}/resolve/"),
                ):
                    if path.startswith(prefix):
                        rest = path[len(prefix) :]
                        return kind, repo, rest.split("/", 1)[1] if kind == "file" else rest
            return None

        def do_GET(self) -> None:
            self._serve(head=False)

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def _serve(self, head: bool) -> None:
            route = self._route()
            if route is None:
                self._not_found()
                return
            kind, repo, rest = route
            repo_id = next(k for k, v in hub.repos.items() if v is repo)
            if kind == "info":
                self._json({"id": repo_id, "sha": repo.sha, "siblings": [{"rfilename": name} for name in repo.files]})
            elif kind == "tree":
                entries = [
                    {"type": "file", "path": name, "size": p.stat().st_size, "oid": _etag(p)[:40]}
                    for name, p in repo.files.items()
                ]
                self._json(entries)
            elif rest in repo.files:
                self._file(repo_id, repo, rest, head)
            else:
                self._not_found()

        def _file(self, repo_id: str, repo: Repo, name: str, head: bool) -> None:
            local = repo.files[name]
            size = local.stat().st_size
            start = 0
            range_header = self.headers.get("Range")
            if range_header and range_header.startswith("bytes="):
                start = int(range_header[6:].split("-")[0] or 0)
            self.send_response(206 if start else 200)
            self.send_header("X-Repo-Commit", repo.sha)
            self.send_header("ETag", f'"{_etag(local)}"')
            self.send_header("Content-Length", str(size - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if head:
                return
            hub.downloads.append((repo_id, name, range_header))
            cut = hub.cuts.pop((repo_id, name), None)
            with local.open("rb") as f:
                f.seek(start)
                sent = 0
                while chunk := f.read(CHUNK):
                    if cut is not None and sent + len(chunk) > cut:
                        self.wfile.write(chunk[: cut - sent])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    self.wfile.write(chunk)
                    sent += len(chunk)

    return Handler


@contextmanager
def running_hub() -> Iterator[FakeHub]:
    hub = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
