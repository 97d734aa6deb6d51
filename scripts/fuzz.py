"""Fuzz a live OpenArc daemon with schemathesis, driven by the daemon's own GET /openapi.json.

    python scripts/fuzz.py --url http://127.0.0.1:8000 --api-key KEY --max-examples 100 --json fuzz.json
    python scripts/fuzz.py --config fuzz.yaml --api-key KEY   # serves `fuzz.yaml` on a free port for the run

Every operation but DELETE (unloading the served model would end the run's coverage) is tested (examples, coverage
and fuzzing phases, all checks). The run counts the test cases, the
5xx answers, the hangs (requests left without an answer within --request-timeout, or dropped) and the other failed
checks; it prints them as JSON on stdout and as a table on stderr, and exits 1 on any 5xx or hang.

Requests that pass validation generate text, so serve the model with a small `max_tokens_limit` (e.g. 16):
a fuzzed `max_tokens` above it is a 400, an unset one gets at most the limit. So that most valid-looking requests
reach a model rather than a 404, schemathesis gets the served document plus examples naming a served model
(request bodies, `model`, `model_id`) and a dictionary of the served ids; no schema constraint is changed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

READY_TIMEOUT_SECONDS = 180.0
SAMPLES_PER_KIND = 5
EXCERPT_CHARS = 600
# Share of generated `model` / `model_id` values taken from the served ids instead of random strings.
MODEL_PROBABILITY = 0.8
PATH_MODEL_PROBABILITY = 0.5


@dataclass
class Report:
    url: str
    cases: int = 0
    requests: int = 0
    server_errors: int = 0
    hangs: int = 0
    duration_seconds: float = 0.0
    slowest_response_seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    # "check: failure title" → failing test cases, for every check but `not_a_server_error` (counted above).
    failed_checks: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seed: int | None = None
    schemathesis_exit_code: int | None = None
    schemathesis_output: str | None = None

    @property
    def ok(self) -> bool:
        return self.cases > 0 and self.server_errors == 0 and self.hangs == 0


def _excerpt(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict) and "$base64" in value:
        value = base64.b64decode(value["$base64"]).decode(errors="replace")
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


def _sample(interaction: dict[str, Any] | None, operation: str, detail: str | None = None) -> dict[str, Any]:
    request = (interaction or {}).get("request") or {}
    response = (interaction or {}).get("response")
    sample: dict[str, Any] = {
        "operation": operation,
        "request": {"method": request.get("method"), "uri": request.get("uri"), "body": _excerpt(request.get("body"))},
        "response": None
        if response is None
        else {"status": response["status_code"], "body": _excerpt(response.get("content"))},
    }
    if detail:
        sample["detail"] = _excerpt(detail)
    return sample


def _add_sample(report: Report, kind: str, sample: dict[str, Any]) -> None:
    bucket = report.samples.setdefault(kind, [])
    if len(bucket) < SAMPLES_PER_KIND:
        bucket.append(sample)


def _read_scenario(report: Report, recorder: dict[str, Any], statuses: Counter[str]) -> None:
    operation = recorder["label"]
    per_op = report.operations.setdefault(operation, {"cases": 0, "statuses": Counter()})
    cases, interactions = recorder.get("cases", {}), recorder.get("interactions", {})
    report.cases += len(cases)
    per_op["cases"] += len(cases)
    for interaction in interactions.values():
        report.requests += 1
        response = interaction.get("response")
        if response is None:
            report.hangs += 1
            _add_sample(report, "hang", _sample(interaction, operation))
            continue
        status = str(response["status_code"])
        statuses[status] += 1
        per_op["statuses"][status] += 1
        report.slowest_response_seconds = max(report.slowest_response_seconds, response.get("elapsed") or 0.0)
        if response["status_code"] >= 500:
            report.server_errors += 1
            _add_sample(report, "5xx", _sample(interaction, operation))
    for case_id, checks in recorder.get("checks", {}).items():
        failed = {c["name"]: c for c in checks if c["status"] == "failure" and c["name"] != "not_a_server_error"}
        for name, check in failed.items():
            failure = (check.get("failure_info") or {}).get("failure") or {}
            kind = f"{name}: {failure.get('title', 'failed')}"
            report.failed_checks[kind] = report.failed_checks.get(kind, 0) + 1
            _add_sample(report, kind, _sample(interactions.get(case_id), operation, failure.get("message")))


def read_events(path: Path, report: Report) -> None:
    """Fold schemathesis' NDJSON event log into the report: one ScenarioFinished per operation and phase."""
    statuses: Counter[str] = Counter()
    with path.open() as events:
        for line in events:
            event = json.loads(line)
            kind, payload = next(iter(event.items()))
            if kind == "Initialize":
                report.seed = payload.get("seed")
            elif kind == "ScenarioFinished":
                _read_scenario(report, payload["recorder"], statuses)
            elif kind in ("NonFatalError", "FatalError"):
                value = payload.get("value") or payload.get("exception") or {}
                title = f"{payload.get('label', 'run')}: {value.get('type', kind)}"
                report.errors[title] = report.errors.get(title, 0) + 1
                _add_sample(report, "error", {"operation": payload.get("label"), "detail": _excerpt(value)})
            elif kind == "EngineFinished":
                report.duration_seconds = round(payload["running_time"], 1)
    report.statuses = dict(sorted(statuses.items()))
    for per_op in report.operations.values():
        per_op["statuses"] = dict(sorted(per_op["statuses"].items()))


# Whole request bodies for the examples and coverage phases: coverage varies one field at a time around them, so
# most of its cases reach a model instead of stopping at an unknown model id. `model` is filled in with a served id.
BODY_EXAMPLES: dict[str, dict[str, dict[str, Any]]] = {
    "/v1/chat/completions": {
        "short": {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8},
        "stream": {
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "max_tokens": 8,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    },
    "/v1/completions": {
        "short": {"prompt": "Once upon a time", "max_tokens": 8},
        "stream": {"prompt": ["One", "Two"], "n": 2, "max_tokens": 4, "stream": True, "echo": True},
    },
}


def served_models(url: str, headers: dict[str, str]) -> list[str]:
    response = httpx.get(f"{url}/v1/models", headers=headers, timeout=30)
    response.raise_for_status()
    return [model["id"] for model in response.json()["data"]]


def with_examples(document: dict[str, Any], model: str) -> dict[str, Any]:
    """The served document plus examples naming a served model: data to start from, no constraint changed."""
    schemas = document["components"]["schemas"]
    for path, item in document["paths"].items():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "model_id":
                    parameter["examples"] = {"served": {"value": model}}
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            # Only bodies that name a model to generate with (not a model spec to load).
            if content is None or path not in BODY_EXAMPLES:
                continue
            examples = BODY_EXAMPLES[path]
            content["examples"] = {name: {"value": {"model": model, **body}} for name, body in examples.items()}
            name = content["schema"]["$ref"].rsplit("/", 1)[-1]
            schemas[name]["properties"]["model"]["examples"] = [model]
    return document


def schemathesis_config(models: list[str]) -> str:
    if not models:
        return ""
    values = ", ".join(json.dumps(model) for model in models)
    return (
        f"[dictionaries.models]\nvalues = [{values}]\n\n[parameters]\n"
        f'"body.model" = {{ dictionary = "models", probability = {MODEL_PROBABILITY} }}\n'
        f'"path.model_id" = {{ dictionary = "models", probability = {PATH_MODEL_PROBABILITY} }}\n'
    )


def run_schemathesis(args: argparse.Namespace, url: str, work: Path) -> Report:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    document = httpx.get(f"{url}/openapi.json", timeout=30).raise_for_status().json()
    models = served_models(url, headers)
    if models:
        document = with_examples(document, models[0])
    schema = work / "openapi.json"
    schema.write_text(json.dumps(document))
    config = work / "schemathesis.toml"
    config.write_text(schemathesis_config(models))
    events = work / "events.ndjson"
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", str(schema), "--url", url),
        *("--phases", args.phases, "--checks", "all", "--max-examples", str(args.max_examples)),
        *("--request-timeout", str(args.request_timeout), "--workers", str(args.workers)),
        *("--generation-database", "none", "--continue-on-failure", "--no-color"),
        *("--report", "ndjson", "--report-ndjson-path", str(events)),
        # Unloading the served model (DELETE, with the served id as the example) would turn the rest of the run into
        # 404s; unloading is covered by the lifecycle tests. Loading stays: a fuzzed spec must get a clear 4xx.
        *("--exclude-method", "DELETE"),
    ]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    if args.seed is not None:
        command += ["--seed", str(args.seed)]
    output = work / "schemathesis.txt"
    with output.open("wb") as log:
        finished = subprocess.run(command, cwd=work, stdout=log, stderr=subprocess.STDOUT, check=False)
    report = Report(url=url, schemathesis_exit_code=finished.returncode, schemathesis_output=str(output))
    if events.exists():
        read_events(events, report)
    return report


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ready(url: str, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise SystemExit(f"the server exited with {process.returncode} before it was ready")
    try:
        return httpx.get(f"{url}/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def serve(config: Path, log_path: Path) -> Iterator[str]:
    """`python -m openarc serve --config` on a free port, until /ready says 200; stopped with SIGTERM."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "openarc", "serve", "--config", str(config), "--port", str(port)]
    # A fuzzed model spec may name an hf:// source: its worker must fail from the cache, never reach the network.
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not _ready(url, process):
            if time.monotonic() > deadline:
                raise SystemExit(f"the server was not ready within {READY_TIMEOUT_SECONDS:g}s (log: {log_path})")
            time.sleep(0.2)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def table(report: Report) -> str:
    rows: list[tuple[str, object]] = [
        ("test cases", report.cases),
        ("requests", report.requests),
        ("5xx", report.server_errors),
        ("hangs", report.hangs),
        ("other failed checks", sum(report.failed_checks.values())),
        ("duration (s)", report.duration_seconds),
        ("slowest response (s)", round(report.slowest_response_seconds, 2)),
    ]
    rows += [(f"  {kind}", count) for kind, count in sorted(report.failed_checks.items())]
    rows += [(f"  error {title}", count) for title, count in sorted(report.errors.items())]
    rows += [
        (f"  {operation}", f"{data['cases']} cases {data['statuses']}") for operation, data in report.operations.items()
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="a running daemon, e.g. http://127.0.0.1:8000")
    target.add_argument("--config", type=Path, help="start `python -m openarc serve --config CONFIG` for the run")
    parser.add_argument("--api-key", default=os.environ.get("OPENARC_API_KEY"), help="default: $OPENARC_API_KEY")
    parser.add_argument("--max-examples", type=int, default=100, help="fuzzed cases per operation (default 100)")
    parser.add_argument("--phases", default="examples,coverage,fuzzing", help="schemathesis phases to run")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="seconds before a request is a hang")
    parser.add_argument("--workers", type=int, default=2, help="concurrent schemathesis workers (default 2)")
    parser.add_argument("--seed", type=int, help="schemathesis seed, to replay a run")
    parser.add_argument("--json", type=Path, help="also write the JSON report to this file")
    parser.add_argument("--work-dir", type=Path, help="keep schemathesis' config, event log and output here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="openarc-fuzz-") as temporary:
        work = args.work_dir or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        if args.config is not None:
            with serve(args.config.resolve(), work / "server.log") as url:
                report = run_schemathesis(args, url, work)
        else:
            report = run_schemathesis(args, args.url.rstrip("/"), work)
        if report.cases == 0:
            print((work / "schemathesis.txt").read_text(errors="replace"), file=sys.stderr)
        if args.work_dir is None:
            report.schemathesis_output = None
    document = json.dumps({**asdict(report), "passed": report.ok}, indent=2)
    if args.json is not None:
        args.json.write_text(document + "\n")
    print(document)
    print(table(report), file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
