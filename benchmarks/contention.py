"""What the serving path's CPU costs the engine beside it. The in-process engine (the ceiling of
benchmarks/engine_bench.py) runs at C alone, and beside the real HTTP process and load generator streaming C
requests at the engine's own token rate from a paced worker that loads no model (benchmarks/paced_worker.py),
with the model's stream_interval at 1 and at K. On a 2-core machine that runs the engine, the server and its
clients, this is the part of OpenArc's gap to the engine that comes from sharing the cores, measured apart
from the worker's own loop.

Each level first runs the engine alone once to learn its step time (the paced worker's step); then every round
runs the three arms in a shuffled order. The table gives each arm's median tok/s and step time, the median of
the rounds' own ratios to "alone", and the share of the machine's cores the serving processes (HTTP process,
paced worker, load generator) took while the engine ran. Linux only (/proc).

    python -m benchmarks.contention -c 16 64 --rounds 5
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from statistics import median
from typing import Any

import httpx

from benchmarks.engine_process import ROOT, EngineProcess
from benchmarks.http_overhead import start
from benchmarks.run import DEMO_MODEL

ALONE = "alone"
# Above the prompts engine_bench warms itself up with.
FIRST_PROMPT = 10_000


def process_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        # Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PacedStack:
    """A paced server and a load generator keeping `concurrency` streams in flight against it."""

    def __init__(self, workdir: Path, port: int, step_ms: float, stream_interval: int) -> None:
        workdir.mkdir()
        self.url = f"http://127.0.0.1:{port}"
        self.server = start(workdir, port, step_ms, "auto", stream_interval)
        self.load: subprocess.Popen[bytes] | None = None

    def replica(self) -> Any:
        return httpx.get(f"{self.url}/openarc/models", timeout=10).json()["data"][0]["replicas"][0]

    def start_load(self, concurrency: int, requests_per_slot: int, max_tokens: int) -> None:
        self.load = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.serving_bench",
                "--url",
                self.url,
                "--model",
                "bench",
                "-c",
                str(concurrency),
                "--requests-per-slot",
                str(requests_per_slot),
                "--max-tokens",
                str(max_tokens),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        # Measure only once every stream is in flight: the load generator's start-up is not the serving path.
        deadline = time.monotonic() + 60
        while self.replica()["active"] < concurrency:
            if self.load.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the load generator did not reach its concurrency")
            time.sleep(0.05)

    def cpu_seconds(self) -> float:
        assert self.load is not None
        http = httpx.get(f"{self.url}/openarc/runtime", timeout=10).json()["cpu_seconds"]
        return float(http) + process_cpu_seconds(self.replica()["pid"]) + process_cpu_seconds(self.load.pid)

    def stop_load(self) -> None:
        if self.load is not None:
            self.load.kill()
            self.load.wait()
            self.load = None

    def stop(self) -> None:
        self.stop_load()
        self.server.terminate()
        self.server.wait(30)


def measure_level(
    engine: EngineProcess,
    first_prompts: Iterator[int],
    workdir: Path,
    args: argparse.Namespace,
    concurrency: int,
) -> dict[str, Any]:
    total = args.requests_per_level
    calibration = engine.run(concurrency, total, next(first_prompts))
    step_ms = calibration["extra"]["steps"]["step_ms"]
    # Enough requests for twice the calibration run and a minute more, so the load never runs dry mid-run.
    request_seconds = args.max_tokens * step_ms / 1000  # one paced request: a token a step
    per_slot = math.ceil((2 * calibration["seconds"] + 60) / request_seconds) + 1
    stacks = {
        f"stream_interval {k}": PacedStack(workdir / f"c{concurrency}-k{k}", args.port + i, step_ms, k)
        for i, k in enumerate(sorted({1, args.stream_interval}))
    }
    runs: dict[str, list[dict[str, Any]]] = {ALONE: [], **{name: [] for name in stacks}}
    try:
        for round_number in range(args.rounds):
            arms = list(runs)
            random.shuffle(arms)
            for arm in arms:
                stack = stacks.get(arm)
                if stack is not None:
                    stack.start_load(concurrency, per_slot, args.max_tokens)
                    cpu_before, wall_before = stack.cpu_seconds(), time.monotonic()
                result = engine.run(concurrency, total, next(first_prompts))
                if stack is not None:
                    cpu = stack.cpu_seconds() - cpu_before
                    result["serving_cpu_share"] = cpu / ((time.monotonic() - wall_before) * (os.cpu_count() or 1))
                    stack.stop_load()
                result["round"] = round_number
                runs[arm].append(result)
                print(json.dumps({"concurrency": concurrency, "arm": arm, **result}), file=sys.stderr)
    finally:
        for stack in stacks.values():
            stack.stop()
    return {"concurrency": concurrency, "paced_step_ms": step_ms, "arms": summarize(runs)}


def summarize(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each arm's medians; its ratio to "alone" is the median of each round's own ratio, since the VM's speed
    drifts between rounds more than the effect measured."""
    alone = {run["round"]: run["output_tokens_per_s"] for run in runs[ALONE]}
    arms = []
    for arm, arm_runs in runs.items():
        ratios = [run["output_tokens_per_s"] / alone[run["round"]] for run in arm_runs]
        shares = [run["serving_cpu_share"] for run in arm_runs if "serving_cpu_share" in run]
        arms.append(
            {
                "arm": arm,
                "tokens_per_s": round(median([run["output_tokens_per_s"] for run in arm_runs]), 1),
                "tokens_per_s_runs": [run["output_tokens_per_s"] for run in arm_runs],
                "ratio_to_alone": round(median(ratios), 4),
                "ratio_runs": [round(r, 4) for r in ratios],
                "step_ms": round(median([run["extra"]["steps"]["step_ms"] for run in arm_runs]), 2),
                "serving_cpu_share": round(median(shares), 4) if shares else None,
            }
        )
    return arms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEMO_MODEL)
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests-per-level", type=int, default=192, help="requests in each engine run")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--stream-interval", type=int, default=4, help="K, the arm beside stream_interval 1")
    parser.add_argument("--port", type=int, default=8781)
    args = parser.parse_args()
    engine = EngineProcess(args.model, args.max_tokens)
    # Prompts of its own for every run: a run must not find an earlier one's in the prefix cache.
    first_prompts = itertools.count(FIRST_PROMPT, args.requests_per_level)
    levels = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for concurrency in args.concurrency:
                levels.append(measure_level(engine, first_prompts, Path(tmp), args, concurrency))
    finally:
        engine.close()
    print(json.dumps({"rounds": args.rounds, "requests_per_level": args.requests_per_level, "levels": levels}))
    print("| C | arm | engine tok/s (runs) | / alone (median of rounds) | step ms | serving CPU, share of cores |")
    print("|---|---|---|---|---|---|")
    for level in levels:
        for arm in level["arms"]:
            share = "-" if arm["serving_cpu_share"] is None else f"{100 * arm['serving_cpu_share']:.1f}%"
            print(
                f"| {level['concurrency']} | {arm['arm']} | {arm['tokens_per_s']} {arm['tokens_per_s_runs']} "
                f"| {100 * arm['ratio_to_alone']:.1f}% | {arm['step_ms']} | {share} |"
            )


if __name__ == "__main__":
    main()
