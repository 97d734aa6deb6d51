"""GET /openapi.json describes every route, and schemathesis fuzzing it against a real daemon finds no 5xx or hang."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema_rs
import schemathesis
from schemathesis.core.result import Err
from starlette.routing import Route
from starlette.testclient import TestClient

from openarc.api.app import build_app
from openarc.config import ServerConfig
from openarc.engine.engine import Engine
from tests.server import run_server, write_config

ROOT = Path(__file__).resolve().parents[2]
KEY = "fuzz-key"
# A small, fixed budget: examples and fuzzing phases, this many cases per operation (~220 cases, ~20 s).
MAX_EXAMPLES = 50
SEED = 20240601


def test_openapi_document_is_valid_and_lists_every_route() -> None:
    app = build_app(Engine([]), ServerConfig(), api_keys=[KEY])
    # Served without a key, like the probes.
    response = TestClient(app).get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["openapi"].startswith("3.1.")

    schema = schemathesis.openapi.from_dict(document)
    schema.validate()
    for component in document["components"]["schemas"].values():
        jsonschema_rs.meta.validate({"$schema": "https://json-schema.org/draft/2020-12/schema", **component})
    assert not [operation for operation in schema.get_all_operations() if isinstance(operation, Err)]

    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    served = {
        (re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path), method)
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert documented == served


def error_records(log: str) -> str:
    """The log's ERROR records, tracebacks included."""
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d )", log)
    return "\n".join(record for record in records if " ERROR " in record.partition("\n")[0])


def test_fuzz_finds_no_server_error_or_hang(smollm2_gguf: Path, tmp_path: Path) -> None:
    model = {"id": "smollm2", "source": str(smollm2_gguf), "devices": ["CPU"], "max_tokens_limit": 16}
    config = write_config(tmp_path / "config.yaml", [model], {"api_keys": [KEY]})
    report_path = tmp_path / "fuzz.json"
    # Fuzzed model specs may name hf:// sources: their workers fail from the cache instead of reaching the network.
    with run_server(config, tmp_path, env={"HF_HUB_OFFLINE": "1"}, api_key=KEY) as server:
        run = subprocess.run(
            [
                *(sys.executable, str(ROOT / "scripts" / "fuzz.py"), "--url", server.url, "--api-key", KEY),
                *("--phases", "examples,fuzzing", "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED)),
                *("--json", str(report_path), "--work-dir", str(tmp_path / "fuzz")),
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        log = server.log()
    assert report_path.exists(), run.stderr
    report = json.loads(report_path.read_text())
    assert report["cases"] >= 150, run.stderr
    problems = json.dumps({"samples": report["samples"], "errors": report["errors"]}, indent=2)
    problems += f"\n--- server log errors ---\n{error_records(log)}"
    assert report["server_errors"] == 0, problems
    assert report["hangs"] == 0, problems
    assert run.returncode == 0, run.stderr
