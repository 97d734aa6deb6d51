"""The in-process worker benchmark: its closed loop keeps C requests in flight on the real engine, and its summary
compares the worker with the engine round by round."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.worker_bench import ClosedLoopChannel, load_runner, run_worker, summarize
from openarc.ipc import AddRequest, RequestOutput, Shutdown, StepReport, WorkerStats


def test_the_closed_loop_runs_every_request_to_its_length_with_c_in_flight(smollm2_gguf: Path) -> None:
    runner = load_runner(smollm2_gguf)
    result = run_worker(runner, concurrency=3, total=7, max_tokens=5)
    assert result.errors == 0
    assert result.output_tokens == 7 * 5
    steps = result.extra["steps"]
    # Three in flight, never more: the batch is between one and three, and above one on average.
    assert 1 < steps["mean_batch"] <= 3
    assert 0 < steps["busy"] <= 1


class Template:
    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        return messages[0]["content"]


def test_a_successor_comes_back_for_the_hold_not_for_a_read_before_it() -> None:
    # Through the socket a successor cannot arrive before its predecessor's report has gone out: the read the worker
    # makes right after sending the report must not see it, or the hold would wait its whole budget for it.
    channel = ClosedLoopChannel(Template(), concurrency=2, total=3, max_tokens=4, first=0)
    assert [c.rid for c in channel.receive(block=True) if isinstance(c, AddRequest)] == [0, 1]
    channel.send(StepReport([RequestOutput(0, text="a", tokens=4, finish_reason="length")], WorkerStats()))
    assert channel.receive(block=False) == []
    successors = channel.receive_within(0.02)
    assert [c.rid for c in successors if isinstance(c, AddRequest)] == [2]
    channel.send(StepReport([RequestOutput(r, tokens=4, finish_reason="length") for r in (1, 2)], WorkerStats()))
    assert channel.tokens == 12 and isinstance(channel.receive(block=False)[-1], Shutdown)


def run(tokens_per_s: float, step_ms: float) -> dict[str, Any]:
    steps = {"step_ms": step_ms, "mean_batch": 16.0, "busy": 0.98}
    return {"output_tokens_per_s": tokens_per_s, "errors": 0, "extra": {"steps": steps}}


def test_the_worker_is_compared_with_the_engine_in_its_own_round() -> None:
    # The VM doubles its speed between rounds: comparing medians would hide that the worker is 10% slower in each.
    runs = {
        "engine": [run(100, 20), run(200, 10), run(400, 5)],
        "worker": [run(90, 22), run(180, 11), run(360, 5.5)],
    }
    row = summarize(16, runs)
    assert row["worker_over_engine_runs"] == [0.9, 0.9, 0.9] and row["worker_over_engine"] == 0.9
    assert row["step_ratio"] == 1.1
    assert row["engine"]["tokens_per_s"] == 200 and row["worker"]["tokens_per_s"] == 180
