"""What the engine and serving benchmarks share: the workload, percentiles, and the result record."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

# ~30-token chat prompts (with SmolLM2's template), varied so prefix caching cannot answer them all at once.
TOPICS = [
    "the ocean",
    "a lighthouse",
    "the moon",
    "a forest",
    "a city at night",
    "the desert",
    "a mountain",
    "a river",
    "winter",
    "a library",
    "a train journey",
    "the stars",
    "an old castle",
    "a garden",
    "the rain",
    "a market",
]


def prompt_messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Write a short poem about {TOPICS[i % len(TOPICS)]}, number {i}."}]


# For one benchmark run on its own (engine_bench or serving_bench alone): runs shorter than ~30 s scatter widely on a
# shared VM (C = 16 at 64 requests, ~20 s a run: from 76% to 131% of the engine), so a level runs 16 requests per
# slot up to 256, and never fewer than `per_slot` a slot. The runner compares targets in many short paired rounds
# instead (run.run_requests).
LEVEL_REQUESTS_CAP = 256


def level_requests(concurrency: int, per_slot: int) -> int:
    """How many requests a closed-loop run at this concurrency sends: C = 1, 4, 16, 64 → 16, 64, 256, 256 at the
    default 4 per slot."""
    return max(concurrency * per_slot, min(concurrency * 16, LEVEL_REQUESTS_CAP))


def percentile(values: list[float], q: float) -> float:
    """Linear between the two nearest ranks (numpy's default), so p50 is the median. Rounding to one rank took the
    lower middle value of 10 and the upper of 12 (round() rounds .5 to even)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = min(max(q / 100, 0.0), 1.0) * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


@dataclass
class Result:
    """One benchmark level: C requests in flight, N in all. Times in milliseconds."""

    target: str
    concurrency: int
    requests: int
    output_tokens: int
    seconds: float
    ttft_ms: list[float] = field(default_factory=list, repr=False)
    itl_ms: list[float] = field(default_factory=list, repr=False)
    e2e_ms: list[float] = field(default_factory=list, repr=False)
    errors: int = 0
    malformed_chunks: int = 0
    # Streams whose chunks carried more than one `created` (not an error; see serving_bench.StreamCheck).
    created_changed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("ttft_ms", "itl_ms", "e2e_ms"):
            values = data.pop(key)
            data[f"{key[:-3]}_p50_ms"] = round(percentile(values, 50), 2)
            data[f"{key[:-3]}_p95_ms"] = round(percentile(values, 95), 2)
        data["output_tokens_per_s"] = round(self.output_tokens / self.seconds, 1) if self.seconds else 0.0
        data["requests_per_s"] = round(self.requests / self.seconds, 2) if self.seconds else 0.0
        data["seconds"] = round(self.seconds, 2)
        data["ttft_mean_ms"] = round(statistics.fmean(self.ttft_ms), 2) if self.ttft_ms else float("nan")
        return data


def step_profile(steps: int, step_seconds: float, sequences: int, wall_seconds: float) -> dict[str, float]:
    """What the engine's steps did over a run: how long one took, how many sequences it carried, and the share of
    the run's wall time spent inside them (the rest is the loop between steps, holds and idle time)."""
    if not steps or wall_seconds <= 0:
        return {"steps": steps, "step_ms": float("nan"), "mean_batch": float("nan"), "busy": float("nan")}
    return {
        "steps": steps,
        "step_ms": round(1000 * step_seconds / steps, 2),
        "mean_batch": round(sequences / steps, 2),
        "busy": round(step_seconds / wall_seconds, 4),
    }
