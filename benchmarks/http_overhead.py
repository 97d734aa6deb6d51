"""What the serving layer itself costs: HTTP-process CPU per generated token and event-loop lag, with a paced
worker that loads no model (benchmarks/paced_worker.py) behind the real HTTP process and load generator.

CPU seconds do not depend on how busy the machine is, so this number is steady run to run, unlike throughput
ratios on a shared 2-core machine: use it to judge a change to the per-token path.

    python -m benchmarks.http_overhead -c 1 16 64 --step-ms 50
    python -m benchmarks.http_overhead -c 16 64 --step-ms 25 --stream-interval 4   # the model's stream_interval
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, get_args

import httpx
import yaml

from benchmarks import serving_bench
from benchmarks.common import level_requests
from benchmarks.engine_process import ROOT
from benchmarks.run import run_async, wait_until_ready
from openarc.event_loop import EventLoopChoice


def start(
    workdir: Path, port: int, step_ms: float, event_loop: str, stream_interval: int = 1
) -> subprocess.Popen[bytes]:
    config = workdir / "paced.yaml"
    # The source must pass config checks; the paced worker never opens it.
    source = workdir / "paced.gguf"
    source.touch()
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"port": port, "log_level": "warning", "model_cache_dir": None, "event_loop": event_loop},
                "models": [
                    {
                        "id": "bench",
                        "source": str(source),
                        "scheduler": {"max_num_seqs": 256},
                        "stream_interval": stream_interval,
                    }
                ],
            }
        )
    )
    env = {**os.environ, "PACED_STEP_MS": str(step_ms)}
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.paced_server", "serve", "--config", str(config)], cwd=ROOT, env=env
    )
    wait_until_ready(process, f"http://127.0.0.1:{port}", "its output above")
    return process


def measure(url: str, concurrency: int, total: int, max_tokens: int) -> dict[str, Any]:
    httpx.get(f"{url}/openarc/runtime?reset=1")
    before = httpx.get(f"{url}/openarc/runtime").json()
    own_before = resource.getrusage(resource.RUSAGE_SELF)
    result = run_async(serving_bench.run(url, "bench", concurrency, total, max_tokens, target="paced"))
    own_after = resource.getrusage(resource.RUSAGE_SELF)
    after = httpx.get(f"{url}/openarc/runtime").json()
    tokens = max(result.output_tokens, 1)
    loadgen = own_after.ru_utime + own_after.ru_stime - own_before.ru_utime - own_before.ru_stime
    summary = result.summary()
    return {
        "concurrency": concurrency,
        "tokens": result.output_tokens,
        "tokens_per_s": summary["output_tokens_per_s"],
        "http_cpu_us_per_token": round(1e6 * (after["cpu_seconds"] - before["cpu_seconds"]) / tokens, 1),
        "loadgen_cpu_us_per_token": round(1e6 * loadgen / tokens, 1),
        "loop_lag_ms": after["loop_lag"],
        "errors": result.errors,
        "malformed_chunks": result.malformed_chunks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--step-ms", type=float, default=50.0, help="the paced worker's time per step")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--requests-per-slot", type=int, default=4)
    parser.add_argument("--stream-interval", type=int, default=1, help="the model's stream_interval")
    parser.add_argument("--event-loop", default="auto", choices=get_args(EventLoopChoice))
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = start(Path(tmp), args.port, args.step_ms, args.event_loop, args.stream_interval)
        url = f"http://127.0.0.1:{args.port}"
        try:
            run_async(serving_bench.run(url, "bench", 4, 8, 8))  # warm-up
            for concurrency in args.concurrency:
                total = level_requests(concurrency, args.requests_per_slot)
                rows.append(measure(url, concurrency, total, args.max_tokens))
                print(json.dumps(rows[-1]), file=sys.stderr)
        finally:
            server.terminate()
            server.wait(30)
    print(
        json.dumps(
            {
                "step_ms": args.step_ms,
                "event_loop": args.event_loop,
                "stream_interval": args.stream_interval,
                "rows": rows,
            }
        )
    )
    print("| C | tok/s | HTTP CPU µs/token | load generator CPU µs/token | loop lag p50 / p99 / max (ms) | errors |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        lag = row["loop_lag_ms"]
        print(
            f"| {row['concurrency']} | {row['tokens_per_s']} | {row['http_cpu_us_per_token']} "
            f"| {row['loadgen_cpu_us_per_token']} | {lag.get('p50_ms')} / {lag.get('p99_ms')} / {lag.get('max_ms')} "
            f"| {row['errors'] + row['malformed_chunks']} |"
        )


if __name__ == "__main__":
    main()
