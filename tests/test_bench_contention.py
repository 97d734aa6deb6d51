"""The contention benchmark's arithmetic: per-round ratios to the engine alone, and the CPU it reads from /proc."""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks.contention import ALONE, process_cpu_seconds, summarize


def engine_run(round_number: int, tokens_per_s: float, share: float | None = None) -> dict[str, Any]:
    run: dict[str, Any] = {
        "round": round_number,
        "output_tokens_per_s": tokens_per_s,
        "extra": {"steps": {"step_ms": 1000 / tokens_per_s}},
    }
    if share is not None:
        run["serving_cpu_share"] = share
    return run


def test_an_arm_is_compared_with_the_engine_alone_in_its_own_round() -> None:
    # The VM doubles its speed between rounds: comparing medians would hide that the arm is 10% slower in each.
    runs = {
        ALONE: [engine_run(0, 100), engine_run(1, 200), engine_run(2, 400)],
        "beside": [engine_run(0, 90, 0.03), engine_run(1, 180, 0.02), engine_run(2, 360, 0.04)],
    }
    alone, beside = summarize(runs)
    assert alone["ratio_to_alone"] == 1.0 and alone["serving_cpu_share"] is None
    assert beside["ratio_runs"] == [0.9, 0.9, 0.9] and beside["ratio_to_alone"] == 0.9
    assert beside["tokens_per_s"] == 180 and beside["serving_cpu_share"] == 0.03


def test_process_cpu_seconds_follows_the_process_own_accounting() -> None:
    before, own_before = process_cpu_seconds(os.getpid()), time.process_time()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    spent = process_cpu_seconds(os.getpid()) - before
    own = time.process_time() - own_before
    # /proc counts in clock ticks (10 ms here): allow two ticks either way.
    assert abs(spent - own) <= 0.02 + 1e-9 and spent >= 0.25
