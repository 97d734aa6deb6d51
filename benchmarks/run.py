"""One pass that measures the raw engine, OpenArc (and optionally a peer server) at each concurrency level.

    python -m benchmarks.run                       # C = 1, 4, 16, 64 on the demo model
    python -m benchmarks.run --peer-url http://127.0.0.1:8080 --peer-model smollm2   # e.g. llama-server

Engine, server and peer alternate, level by level and round by round (`--rounds`, default 10; the median run
is reported with the range of every run's tok/s beside it): each process idles while another is measured.
Rounds run the targets in turn and then in reverse (engine, OpenArc, peer; peer, OpenArc, engine; ...), so a
machine that slows down or speeds up over minutes favours none of them, and OpenArc / engine is the median of
each round's own ratio (and OpenArc - engine in TTFT p50 and in step time the median of each round's own
difference or ratio): a shared VM's speed moves ±10% from one minute to the next, more than the gap measured.
So rounds are many and short (`--waves`: each run sends C x 3 requests, at least 16): the two runs of a round
are seconds apart, not minutes.

Also measured: cold start (process start to /ready) with an empty OpenVINO model cache, warm start with it
filled (on CPU, where OpenArc keeps no model cache because OpenVINO 2026.4 cannot re-import it, a second start),
HTTP-process event-loop lag, HTTP-process CPU seconds per 1,000 generated tokens, and the RSS of the
HTTP process and of each worker. A second table splits throughput for the engine and OpenArc alike into step
time, sequences per step and the share of the run spent inside steps: the last two are fractions of one run and
do not move with the machine's speed, so they show where OpenArc loses even when the ratios scatter. Writes
JSON and the markdown tables to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from statistics import median
from typing import Any, TypeVar

import httpx
import yaml

from benchmarks import serving_bench
from benchmarks.common import TOPICS, step_profile
from benchmarks.engine_process import ROOT, EngineProcess
from openarc import event_loop

T = TypeVar("T")
# Warm-ups use the prompts numbered from WARM_UP_PROMPT to FIRST_MEASURED_PROMPT: four digits, like the measured
# ones, so that they are tokenized to the same lengths.
WARM_UP_PROMPT = 1000
FIRST_MEASURED_PROMPT = 1100
# One prompt per topic: every prompt length the measured runs bring.
WARM_UP_REQUESTS = len(TOPICS)

DEMO_MODEL = ROOT / "models" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"

# A run at C = 1 or 4 below this many requests has too few first tokens for a TTFT median.
MIN_RUN_REQUESTS = 16


def run_requests(concurrency: int, waves: int) -> int:
    """How many requests one run sends: `waves` times the concurrency, at least MIN_RUN_REQUESTS. Short runs, in
    many rounds: with long ones (256 requests, ~80 s at C = 16) the engine's and OpenArc's runs of a round were
    minutes apart and the VM's drift between them showed up as a 10% difference in step time that 16 rounds of
    32-request runs did not find (OpenArc's steps 0.999 of the engine's, the median of the rounds' ratios)."""
    return max(concurrency * waves, MIN_RUN_REQUESTS)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def wait_until_ready(process: subprocess.Popen[bytes], url: str, log_name: str) -> None:
    """Poll /ready until it answers 200; fail at once if the server process exits meanwhile."""
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}; see {log_name}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)


class Server:
    def __init__(self, model: Path, workdir: Path, port: int, stream_interval: int = 1) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.config = workdir / "bench.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "server": {"port": port, "log_level": "warning", "model_cache_dir": str(workdir / "ov_cache")},
                    "models": [
                        {
                            "id": "bench",
                            "source": str(model),
                            "scheduler": {"cache_size": 1},
                            "stream_interval": stream_interval,
                        }
                    ],
                }
            )
        )
        self.log = (workdir / "server.log").open("wb")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Seconds from process start to /ready answering 200."""
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "openarc", "serve", "--config", str(self.config)], stdout=self.log, stderr=self.log
        )
        wait_until_ready(self.process, self.url, self.log.name)
        return time.perf_counter() - started

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)

    def get(self, path: str) -> Any:
        return httpx.get(f"{self.url}{path}", timeout=10).json()


def run_async(work: Coroutine[Any, Any, T]) -> T:
    # The load generator on uvloop too: its CPU comes out of the same two cores as the server's.
    return event_loop.run(work, event_loop.resolve("auto"))


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput (of an even number, the lower of the two middle ones), with throughput,
    TTFT p50 and the step profile replaced by their medians over the runs (these need not come from one run), plus
    every run's tok/s and TTFT p50."""
    ordered = sorted(runs, key=lambda run: run["output_tokens_per_s"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    rates = [run["output_tokens_per_s"] for run in runs]
    chosen["output_tokens_per_s"] = round(median(rates), 1)
    ttfts = [run["ttft_p50_ms"] for run in runs]
    chosen["ttft_p50_ms"] = round(median(ttfts), 2)
    chosen["extra"] = {
        **chosen["extra"],
        "tokens_per_s_runs": rates,
        "ttft_p50_ms_runs": ttfts,
    }
    profiles = [run["extra"]["steps"] for run in runs if "steps" in run.get("extra", {})]
    if profiles:
        chosen["extra"]["steps"] = {key: round(median([p[key] for p in profiles]), 4) for key in profiles[0]}
    # Errors anywhere count, not only in the chosen run.
    for key in ("errors", "malformed_chunks", "created_changed"):
        chosen[key] = sum(run.get(key, 0) for run in runs)
    return chosen


def paired_ratios(runs: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> list[float]:
    """Each round's throughput over the baseline's in the same round."""
    return [
        round(run["output_tokens_per_s"] / base["output_tokens_per_s"], 4)
        for run, base in zip(runs, baseline, strict=True)
    ]


def paired_ttft_gaps(runs: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> list[float]:
    """Each round's TTFT p50 minus the baseline's in the same round, in ms."""
    return [round(run["ttft_p50_ms"] - base["ttft_p50_ms"], 2) for run, base in zip(runs, baseline, strict=True)]


def paired_step_ratios(runs: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> list[float]:
    """Each round's mean step time over the baseline's in the same round."""
    return [
        round(run["extra"]["steps"]["step_ms"] / base["extra"]["steps"]["step_ms"], 4)
        for run, base in zip(runs, baseline, strict=True)
    ]


def measure_server(server: Server, concurrency: int, total: int, max_tokens: int, first: int) -> dict[str, Any]:
    server.get("/openarc/runtime?reset=1")
    before = server.get("/openarc/runtime")
    worker_before = server.get("/openarc/models")["data"][0]["replicas"][0]
    result = run_async(
        serving_bench.run(server.url, "bench", concurrency, total, max_tokens, target="openarc", first=first)
    )
    after = server.get("/openarc/runtime")
    workers = server.get("/openarc/models")["data"][0]["replicas"]
    summary = result.summary()
    cpu = after["cpu_seconds"] - before["cpu_seconds"]
    worker_after = workers[0]
    steps = step_profile(
        worker_after["steps"] - worker_before["steps"],
        worker_after["step_seconds"] - worker_before["step_seconds"],
        worker_after["step_sequences"] - worker_before["step_sequences"],
        result.seconds,
    )
    summary["extra"] = {
        "steps": steps,
        "loop_lag_ms": after["loop_lag"],
        "http_cpu_seconds_per_1k_tokens": round(1000 * cpu / max(result.output_tokens, 1), 3),
        "http_rss_mb": rss_mb(after["pid"]),
        "worker_rss_mb": [rss_mb(w["pid"]) for w in workers],
    }
    return summary


def measure_peer(url: str, model: str, concurrency: int, total: int, max_tokens: int, first: int) -> dict[str, Any]:
    return run_async(
        serving_bench.run(url, model, concurrency, total, max_tokens, target="peer", first=first)
    ).summary()


def table(rows: list[dict[str, Any]], starts: dict[str, float]) -> str:
    by_level: dict[int, dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_level.setdefault(row["concurrency"], {})[row["target"]] = row
    lines = [
        "| C | engine tok/s | OpenArc tok/s | OpenArc / engine (per round) | peer tok/s "
        "| TTFT p50 engine / OpenArc / peer (ms) | TTFT p50 OpenArc - engine (per round, ms) "
        "| ITL p50 / p95 OpenArc (ms) | loop lag p50 / p99 / max (ms) "
        "| HTTP CPU s per 1k tok | errors / malformed (OpenArc, peer) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for level, targets in sorted(by_level.items()):
        engine, ours, peer = targets.get("engine", {}), targets["openarc"], targets.get("peer", {})
        ratios = ours["extra"].get("engine_ratio_runs", [])
        ratio = f"{median(ratios):.1%}{_spread(ratios, '{:.1%}')}" if ratios else "-"
        gaps = ours["extra"].get("engine_ttft_gap_ms_runs", [])
        gap = f"{median(gaps):+.2f}{_spread(gaps, '{:+g}')}" if gaps else "-"
        lag = ours["extra"]["loop_lag_ms"]
        lines.append(
            f"| {level} | {_rate(engine)} | {_rate(ours)} | {ratio} | {_rate(peer)} "
            f"| {engine.get('ttft_p50_ms', '-')} / {ours['ttft_p50_ms']} / {peer.get('ttft_p50_ms', '-')} | {gap} "
            f"| {ours['itl_p50_ms']} / {ours['itl_p95_ms']} "
            f"| {lag.get('p50_ms')} / {lag.get('p99_ms')} / {lag.get('max_ms')} "
            f"| {ours['extra']['http_cpu_seconds_per_1k_tokens']} "
            f"| {ours['errors']} / {ours['malformed_chunks']}, {peer.get('errors', '-')} / "
            f"{peer.get('malformed_chunks', '-')} |"
        )
    lines += ["", *step_table(by_level)]
    last = by_level[max(by_level)]["openarc"]["extra"]
    rounds = len(last["tokens_per_s_runs"])
    lines.append("")
    lines.append(
        f"tok/s and TTFT p50: medians of {rounds} runs per target and level (the runs' range in brackets); "
        "OpenArc / engine and OpenArc - engine: the medians of the rounds' own ratios and differences. "
        "Targets alternate, in turn and in reverse, "
        "with fresh prompts each run. "
        f"Cold start {starts['cold_start_s']:.1f} s, warm start (model cache filled; on CPU none is kept) "
        f"{starts['warm_start_s']:.1f} s; "
        f"RSS after the run: HTTP process {last['http_rss_mb']} MB, worker {last['worker_rss_mb']} MB."
    )
    deviations: dict[str, int] = {}
    for row in rows:
        if row.get("created_changed"):
            deviations[row["target"]] = deviations.get(row["target"], 0) + row["created_changed"]
    if deviations:
        lines.append(
            "Streams whose chunks changed `created` (OpenAI keeps one per stream; counted, not errors): "
            + ", ".join(f"{target} {count}" for target, count in sorted(deviations.items()))
            + "."
        )
    return "\n".join(lines)


def step_table(by_level: dict[int, dict[str, dict[str, Any]]]) -> list[str]:
    """Where OpenArc's throughput differs from the engine's: slower steps, fewer sequences in them, or less of the
    wall time spent in them (the worker's loop between steps, holds for successors, idle time)."""
    lines = [
        "| C | step ms engine / OpenArc | OpenArc step / engine step (per round) "
        "| sequences per step engine / OpenArc | time in steps engine / OpenArc |",
        "|---|---|---|---|---|",
    ]
    for level, targets in sorted(by_level.items()):
        engine = targets.get("engine", {}).get("extra", {}).get("steps")
        ours = targets["openarc"]["extra"].get("steps")
        if engine is None or ours is None:
            continue
        ratios = targets["openarc"]["extra"].get("engine_step_ratio_runs", [])
        ratio = f"{median(ratios):.3f}{_spread(ratios, '{:.3f}')}" if ratios else "-"
        lines.append(
            f"| {level} | {engine['step_ms']} / {ours['step_ms']} | {ratio} "
            f"| {engine['mean_batch']} / {ours['mean_batch']} | {engine['busy']:.1%} / {ours['busy']:.1%} |"
        )
    lines.append("")
    lines.append(
        "Medians over the runs; the step ratio is the median of each round's own. Output tok/s is about sequences "
        "per step times the share of time in steps, over the step time."
    )
    return lines


def _rate(row: dict[str, Any]) -> str:
    if not row:
        return "-"
    return f"{row['output_tokens_per_s']}{_spread(row['extra'].get('tokens_per_s_runs', []), '{:g}')}"


def _spread(values: list[float], form: str) -> str:
    """The runs' range, ` [lowest … highest]`, when there was more than one (the JSON keeps every value)."""
    if len(values) < 2:
        return ""
    return f" [{form.format(min(values))} … {form.format(max(values))}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEMO_MODEL)
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--waves", type=int, default=3, help="a run sends C x this many requests (at least 16)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=10, help="runs per target and level; the median is reported")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--peer-url", help="another OpenAI-compatible server to measure in the same pass")
    parser.add_argument("--peer-model", default="smollm2")
    parser.add_argument(
        "--stream-interval", type=int, default=1, help="OpenArc's stream_interval (tokens per chunk after the first)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    # Every run as measured, level by level, so that a run file can be read again with other statistics.
    all_runs: dict[int, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(args.model, Path(tmp), args.port, args.stream_interval)
        starts = {"cold_start_s": server.start()}
        server.stop()
        starts["warm_start_s"] = server.start()
        engine = EngineProcess(args.model, args.max_tokens)
        try:
            # Warm the server the way the engine process warmed itself, then both alike with one stream at a time.
            # Without the second, the first C = 1 run of each target took ~2x as long to its first token as the
            # later ones (TTFT p50 80-156 ms against 40-98 in four passes), most likely the CPU plugin's first
            # inference at each new input shape: one prompt at a time brings shapes the warm-up of 4 did not.
            run_async(serving_bench.run(server.url, "bench", 4, 4, 8))
            engine.run(1, WARM_UP_REQUESTS, WARM_UP_PROMPT)
            run_async(
                serving_bench.run(server.url, "bench", 1, WARM_UP_REQUESTS, args.max_tokens, first=WARM_UP_PROMPT)
            )
            first = FIRST_MEASURED_PROMPT
            for concurrency in args.concurrency:
                total = run_requests(concurrency, args.waves)
                runs: dict[str, list[dict[str, Any]]] = {"engine": [], "openarc": [], "peer": []}
                # Targets in turn, then in reverse (see the docstring). Each run has prompts of its own: a later
                # run must not find an earlier one's in the prefix cache.
                order = ["engine", "openarc", "peer"] if args.peer_url else ["engine", "openarc"]
                for round_number in range(args.rounds):
                    for target in order if round_number % 2 == 0 else order[::-1]:
                        if target == "engine":
                            runs["engine"].append(engine.run(concurrency, total, first))
                        elif target == "openarc":
                            runs["openarc"].append(measure_server(server, concurrency, total, args.max_tokens, first))
                        else:
                            assert args.peer_url is not None
                            runs["peer"].append(
                                measure_peer(args.peer_url, args.peer_model, concurrency, total, args.max_tokens, first)
                            )
                        first += total
                all_runs[concurrency] = {target: target_runs for target, target_runs in runs.items() if target_runs}
                openarc = median_run(runs["openarc"])
                openarc["extra"]["engine_ratio_runs"] = paired_ratios(runs["openarc"], runs["engine"])
                openarc["extra"]["engine_ttft_gap_ms_runs"] = paired_ttft_gaps(runs["openarc"], runs["engine"])
                openarc["extra"]["engine_step_ratio_runs"] = paired_step_ratios(runs["openarc"], runs["engine"])
                for target, target_runs in runs.items():
                    if target_runs:
                        rows.append(openarc if target == "openarc" else median_run(target_runs))
                        print(json.dumps(rows[-1]), file=sys.stderr)
        finally:
            engine.close()
            server.stop()

    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report = {
        "model": str(args.model),
        "max_tokens": args.max_tokens,
        "stream_interval": args.stream_interval,
        "cpus": os.cpu_count(),
        **starts,
        "rows": rows,
        "runs": all_runs,
    }
    (args.out / f"run-{stamp}.json").write_text(json.dumps(report, indent=2))
    markdown = table(rows, starts)
    if args.stream_interval != 1:
        markdown += f"\nOpenArc ran with `stream_interval: {args.stream_interval}` (the default is 1)."
    (args.out / f"run-{stamp}.md").write_text(markdown + "\n")
    print(json.dumps(report))
    print(markdown)


if __name__ == "__main__":
    main()
