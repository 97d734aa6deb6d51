"""The worker's own cost: OpenArc's worker loop in-process, against the engine ceiling, with no IPC and no HTTP.

The worker runs as the server runs it (`ModelRunner`'s pipeline and configuration, `WorkerLoop`: tokenizing
arrivals, admission, the step, reading the handles, the text, each report msgpack-encoded, the step hold), but its
channel is a closed loop in memory: a request's successor is there for the step hold that follows the report that
ended it, with no round trip. Rounds alternate with the ceiling of benchmarks/engine_bench.py in the same process,
so what is left between this and the server's figures in a pass is the socket, the HTTP process, the clients and the
cores they share.

    python -m benchmarks.worker_bench -c 16 64 --rounds 8
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from statistics import median
from typing import Any

import msgspec

from benchmarks import engine_bench
from benchmarks.common import Result, prompt_messages, step_profile
from benchmarks.run import DEMO_MODEL, paired_ratios, paired_step_ratios, run_requests
from openarc.ipc import AddRequest, Command, LoadModel, SamplingParams, Shutdown, StepReport, TextPrompt, frame
from openarc.worker.loop import WorkerLoop
from openarc.worker.pipeline import ModelRunner

# The server's defaults (config.SchedulerConfig), with the engine ceiling's one-gigabyte KV cache.
MAX_NUM_SEQS = 64
REFILL_WAIT_MS = 20.0


class ClosedLoopChannel:
    """Keeps `concurrency` requests in flight until `total` have ended; encodes each report as the real channel
    does, and sends the worker a Shutdown once the last request has ended. A successor is there for the worker's
    next wait (the step hold), never for a read made before it: through a socket it cannot come back before the
    report that ended its predecessor has gone out, and one taken early would leave the hold waiting for it."""

    def __init__(self, tokenizer: Any, concurrency: int, total: int, max_tokens: int, first: int) -> None:
        self.tokenizer = tokenizer
        self.total = total
        self.max_tokens = max_tokens
        self.first = first
        self.sent = self.ended = self.errors = self.tokens = 0
        self.pending: list[Command] = []
        self.arriving: list[Command] = []
        self.encoder = msgspec.msgpack.Encoder()
        for _ in range(min(concurrency, total)):
            self.send_next()
        self.pending, self.arriving = self.arriving, []

    def send_next(self) -> None:
        if self.sent >= self.total:
            return
        # The HTTP process renders the chat template; the worker tokenizes the text.
        text = self.tokenizer.apply_chat_template(prompt_messages(self.first + self.sent), add_generation_prompt=True)
        params = SamplingParams(max_tokens=self.max_tokens, temperature=0, ignore_eos=True)
        self.arriving.append(AddRequest(self.sent, TextPrompt(text), params))
        self.sent += 1

    def receive(self, block: bool) -> list[Command]:
        commands, self.pending, self.arriving = self.pending, self.arriving, []
        if self.ended >= self.total:
            commands.append(Shutdown())
        return commands

    def receive_within(self, seconds: float) -> list[Command]:
        self.pending += self.arriving
        self.arriving = []
        return self.receive(block=False)

    def send(self, report: StepReport) -> None:
        frame(report, self.encoder)
        for output in report.outputs:
            self.tokens += output.tokens
            if output.error is not None:
                self.errors += 1
            if output.finish_reason is not None or output.error is not None:
                self.ended += 1
                self.send_next()


def load_runner(model: Path) -> ModelRunner:
    spec = LoadModel(
        model_id="bench",
        source=str(model),
        device="CPU",
        scheduler={"cache_size": 1, "max_num_seqs": MAX_NUM_SEQS, "enable_prefix_caching": True},
        properties={},
    )
    return ModelRunner(spec)


def run_worker(runner: ModelRunner, concurrency: int, total: int, max_tokens: int, first: int = 0) -> Result:
    channel = ClosedLoopChannel(runner.tokenizer, concurrency, total, max_tokens, first)
    loop = WorkerLoop(runner, channel, MAX_NUM_SEQS, REFILL_WAIT_MS / 1000)  # type: ignore[arg-type]
    started = time.perf_counter()
    loop.run()
    seconds = time.perf_counter() - started
    stats = loop.stats
    result = Result("worker", concurrency, total, channel.tokens, seconds, errors=channel.errors)
    result.extra["steps"] = step_profile(stats.steps, stats.step_seconds, stats.step_sequences, seconds)
    return result


def summarize(concurrency: int, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians per target, and the worker against the engine as the median of each round's own ratio (the VM's
    speed drifts between rounds more than the effect measured)."""
    row: dict[str, Any] = {"concurrency": concurrency}
    for target, target_runs in runs.items():
        profiles = [run["extra"]["steps"] for run in target_runs]
        row[target] = {
            "tokens_per_s": round(median(run["output_tokens_per_s"] for run in target_runs), 1),
            "tokens_per_s_runs": [run["output_tokens_per_s"] for run in target_runs],
            "step_ms": round(median(p["step_ms"] for p in profiles), 2),
            "mean_batch": round(median(p["mean_batch"] for p in profiles), 2),
            "busy": round(median(p["busy"] for p in profiles), 4),
            "errors": sum(run["errors"] for run in target_runs),
        }
    row["worker_over_engine_runs"] = paired_ratios(runs["worker"], runs["engine"])
    row["worker_over_engine"] = round(median(row["worker_over_engine_runs"]), 4)
    row["step_ratio_runs"] = paired_step_ratios(runs["worker"], runs["engine"])
    row["step_ratio"] = round(median(row["step_ratio_runs"]), 4)
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| C | engine tok/s | worker tok/s | worker / engine (per round) | step ms engine / worker | worker step /"
        " engine step (per round) | sequences per step engine / worker | time in steps engine / worker | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        e, w = row["engine"], row["worker"]
        ratios, steps = row["worker_over_engine_runs"], row["step_ratio_runs"]
        lines.append(
            f"| {row['concurrency']} | {e['tokens_per_s']} | {w['tokens_per_s']} | {row['worker_over_engine']:.1%}"
            f" [{min(ratios):.1%} … {max(ratios):.1%}] | {e['step_ms']} / {w['step_ms']} | {row['step_ratio']:.3f}"
            f" [{min(steps):.3f} … {max(steps):.3f}] | {e['mean_batch']} / {w['mean_batch']} | {e['busy']:.1%} /"
            f" {w['busy']:.1%} | {e['errors'] + w['errors']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEMO_MODEL)
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--waves", type=int, default=3, help="a run sends C x this many requests (at least 16)")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    # The worker's pipeline first: of two identical pipelines in one process, the second loaded ran 0.95 of the
    # first's step time over 8 rounds (0.85-1.18: within this VM's noise, but not in the worker's favour).
    runner = load_runner(args.model)
    pipe = engine_bench.load(str(args.model))
    # Warm-up: the first inferences compile kernels, in each pipeline.
    engine_bench.run(pipe, 4, 4, 8)
    run_worker(runner, 4, 4, 8)
    first = 10_000  # above the warm-ups' prompts, and every run with prompts of its own
    rows = []
    for concurrency in args.concurrency:
        total = run_requests(concurrency, args.waves)
        runs: dict[str, list[dict[str, Any]]] = {"engine": [], "worker": []}
        for round_number in range(args.rounds):
            order = ["engine", "worker"] if round_number % 2 == 0 else ["worker", "engine"]
            for target in order:
                if target == "engine":
                    result = engine_bench.run(pipe, concurrency, total, args.max_tokens, first)
                else:
                    result = run_worker(runner, concurrency, total, args.max_tokens, first)
                first += total
                runs[target].append(result.summary())
        row = summarize(concurrency, runs)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(table(rows))


if __name__ == "__main__":
    main()
