"""Soak test: keep C streaming chat requests in flight for N minutes; report errors and every process's RSS drift.

    python -m benchmarks.soak                          # C = 32 for 10 minutes on the demo model
    python -m benchmarks.soak --minutes 60 --concurrency 32 --max-tokens 64
    python -m benchmarks.soak --url http://127.0.0.1:8000 --model smollm2   # a daemon that is already running

Every SSE chunk is validated as in the serving benchmark. The RSS of the HTTP process and of each worker is
sampled every --sample-seconds from /proc; drift is measured over the second half of the run, from the first
sample at half time to the last: a worker's RSS first grows while its KV cache fills (prefix caching keeps
finished prompts' blocks until the cache is full), which is not a leak. Worker restarts are read from
/openarc/models. Prints JSON on stdout and a table on stderr; exits 1 on any error or restart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks import serving_bench
from benchmarks.common import Result, prompt_messages
from benchmarks.run import DEMO_MODEL, Server, rss_mb

WARM_UP_SHARE = 0.5


@dataclass
class Sample:
    elapsed_s: float
    rss_mb: dict[str, float | None]


@dataclass
class Soak:
    url: str
    model: str
    samples: list[Sample] = field(default_factory=list)


def _processes(client: httpx.Client, url: str) -> dict[str, int]:
    """Name → PID of the HTTP process and every worker, as the daemon reports them now."""
    runtime = client.get(f"{url}/openarc/runtime").json()
    processes = {"http": int(runtime["pid"])}
    for model in client.get(f"{url}/openarc/models").json()["data"]:
        for replica in model["replicas"]:
            if replica.get("pid"):
                processes[replica["name"]] = int(replica["pid"])
    return processes


def _restarts(client: httpx.Client, url: str) -> int:
    models = client.get(f"{url}/openarc/models").json()["data"]
    return sum(int(replica.get("restarts", 0)) for model in models for replica in model["replicas"])


async def _load(url: str, model: str, concurrency: int, seconds: float, max_tokens: int, result: Result) -> None:
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**12))

    async def worker() -> None:
        connection = serving_bench.connect(url, {})
        try:
            while time.perf_counter() < deadline:
                i = next(counter)
                body = {
                    "model": model,
                    "messages": prompt_messages(i),
                    "max_tokens": max_tokens,
                    "temperature": 0.7,
                    "seed": i,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                }
                await serving_bench.one_stream(connection, json.dumps(body).encode(), result)
                result.requests += 1
        finally:
            connection.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _sample(soak: Soak, seconds: float, every: float, started: float) -> None:
    with httpx.Client(timeout=10) as client:
        while True:
            elapsed = time.perf_counter() - started
            processes = _processes(client, soak.url)
            soak.samples.append(Sample(round(elapsed, 1), {name: rss_mb(pid) for name, pid in processes.items()}))
            if elapsed >= seconds:
                return
            await asyncio.sleep(min(every, max(seconds - elapsed, 0.0)))


async def soak_run(soak: Soak, concurrency: int, seconds: float, max_tokens: int, every: float) -> Result:
    result = Result("openarc", concurrency, 0, 0, 0.0)
    started = time.perf_counter()
    await asyncio.gather(
        _load(soak.url, soak.model, concurrency, seconds, max_tokens, result),
        _sample(soak, seconds, every, started),
    )
    result.seconds = time.perf_counter() - started
    # One sample once the last streams have ended, so the final RSS is an idle one.
    with httpx.Client(timeout=10) as client:
        processes = _processes(client, soak.url)
    soak.samples.append(Sample(round(result.seconds, 1), {name: rss_mb(pid) for name, pid in processes.items()}))
    return result


def drift(soak: Soak, seconds: float) -> dict[str, dict[str, float | None]]:
    warm = [s for s in soak.samples if s.elapsed_s >= seconds * WARM_UP_SHARE] or soak.samples
    names = sorted({name for s in soak.samples for name in s.rss_mb})
    report: dict[str, dict[str, float | None]] = {}
    for name in names:
        values = [s.rss_mb.get(name) for s in warm]
        present = [v for v in values if v is not None]
        start, end = (present[0], present[-1]) if present else (None, None)
        report[name] = {
            "start_mb": start,
            "end_mb": end,
            "max_mb": max(present) if present else None,
            "drift_mb": round(end - start, 1) if start is not None and end is not None else None,
        }
    return report


def table(summary: dict[str, Any]) -> str:
    lines = [
        f"soak: C = {summary['concurrency']}, {summary['minutes']} min, {summary['requests']} requests, "
        f"{summary['output_tokens']} tokens ({summary['output_tokens_per_s']} tok/s), errors {summary['errors']}, "
        f"malformed {summary['malformed_chunks']}, worker restarts {summary['worker_restarts']}",
        "",
        "| process | RSS at half time (MB) | RSS at end (MB) | max (MB) | drift over 2nd half (MB) |",
        "|---|---|---|---|---|",
    ]
    for name, rss in summary["rss"].items():
        lines.append(f"| {name} | {rss['start_mb']} | {rss['end_mb']} | {rss['max_mb']} | {rss['drift_mb']} |")
    return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running daemon (on this machine: RSS is read from /proc)")
    parser.add_argument("--model", default="bench")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="also write the JSON report here")
    args = parser.parse_args()
    seconds = args.minutes * 60

    with tempfile.TemporaryDirectory(prefix="openarc-soak-") as workdir:
        server = None
        url = args.url
        if url is None:
            server = Server(DEMO_MODEL, Path(workdir), free_port())
            server.start()
            url = server.url
        try:
            soak = Soak(url, args.model)
            with httpx.Client(timeout=10) as client:
                restarts_before = _restarts(client, url)
            result = asyncio.run(soak_run(soak, args.concurrency, seconds, args.max_tokens, args.sample_seconds))
            with httpx.Client(timeout=10) as client:
                restarts = _restarts(client, url) - restarts_before
        finally:
            if server is not None:
                server.stop()

    summary = result.summary()
    summary.pop("extra", None)
    summary.update(
        minutes=args.minutes,
        worker_restarts=restarts,
        rss=drift(soak, seconds),
        samples=[{"elapsed_s": s.elapsed_s, "rss_mb": s.rss_mb} for s in soak.samples],
    )
    text = json.dumps(summary)
    print(text)
    if args.json is not None:
        args.json.write_text(text)
    print(table(summary), file=sys.stderr)
    sys.exit(1 if summary["errors"] or restarts else 0)


if __name__ == "__main__":
    main()
