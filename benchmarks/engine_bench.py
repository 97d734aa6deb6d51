"""The ceiling: GenAI's ContinuousBatchingPipeline driven in-process, closed loop, no HTTP and no detokenizer.

python benchmarks/engine_bench.py --model models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf -c 1 4 16 64
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import openvino_genai

from benchmarks.common import Result, level_requests, prompt_messages, step_profile


def load(model: str, properties: dict[str, Any] | None = None) -> Any:
    scheduler = openvino_genai.SchedulerConfig()
    scheduler.cache_size = 1
    scheduler.enable_prefix_caching = True
    return openvino_genai.ContinuousBatchingPipeline(model, scheduler, "CPU", properties or {})


def run(pipe: Any, concurrency: int, total: int, max_tokens: int, first: int = 0) -> Result:
    tokenizer = pipe.get_tokenizer()
    base = pipe.get_config()
    config = openvino_genai.GenerationConfig()
    config.max_new_tokens = max_tokens
    config.ignore_eos = True
    config.eos_token_id = base.eos_token_id

    def encode(i: int) -> Any:
        # Part of TTFT: a server must template and tokenize every request too.
        prompt = tokenizer.apply_chat_template(prompt_messages(i), add_generation_prompt=True)
        return tokenizer.encode(prompt, add_special_tokens=False).input_ids

    result = Result("engine", concurrency, total, 0, 0.0)
    live: dict[int, list[Any]] = {}  # rid -> [handle, started, last_token_at, tokens]
    submitted = finished = steps = sequences = 0
    step_seconds = 0.0
    start = time.perf_counter()
    while finished < total:
        while submitted < total and len(live) < concurrency:
            started = time.perf_counter()
            prompt = encode(first + submitted)
            live[submitted] = [pipe.add_request(submitted, prompt, config), started, None, 0]
            submitted += 1
        stepped = time.perf_counter()
        pipe.step()
        now = time.perf_counter()
        # The worker reads the same metrics after each step (the batch size for its counters).
        steps, step_seconds = steps + 1, step_seconds + now - stepped
        sequences += pipe.get_metrics().scheduled_requests
        for rid in list(live):
            handle, started, last, tokens = live[rid]
            while handle.can_read():
                for output in handle.read().values():
                    count = len(output.generated_ids)
                    if count:
                        if last is None:
                            result.ttft_ms.append((now - started) * 1000)
                        else:
                            result.itl_ms.append((now - last) * 1000 / count)
                        last, tokens = now, tokens + count
            live[rid][2:] = [last, tokens]
            if handle.get_status() != openvino_genai.GenerationStatus.RUNNING:
                result.output_tokens += tokens
                result.e2e_ms.append((now - started) * 1000)
                finished += 1
                del live[rid]
    result.seconds = time.perf_counter() - start
    result.extra["steps"] = step_profile(steps, step_seconds, sequences, result.seconds)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--requests-per-slot", type=int, default=4, help="at least this many a slot")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--stdin", action="store_true", help="run one level per 'C N FIRST' line read from stdin")
    args = parser.parse_args()
    pipe = load(args.model)
    run(pipe, 4, 4, 8)  # warm-up: first inferences compile kernels
    if args.stdin:
        # The runner keeps this process loaded and idle between levels, so engine and server alternate.
        print("ready", flush=True)
        for line in sys.stdin:
            concurrency, total, first = map(int, line.split())
            print(json.dumps(run(pipe, concurrency, total, args.max_tokens, first).summary()), flush=True)
        return
    for concurrency in args.concurrency:
        total = level_requests(concurrency, args.requests_per_slot)
        print(json.dumps(run(pipe, concurrency, total, args.max_tokens).summary()))


if __name__ == "__main__":
    main()
