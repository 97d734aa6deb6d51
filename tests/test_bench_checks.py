"""The load generator's stream checks and the runner's median: what the performance figures rest on."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from benchmarks.common import level_requests, percentile, step_profile
from benchmarks.run import median_run, paired_ratios, paired_step_ratios, paired_ttft_gaps, run_requests, table
from benchmarks.serving_bench import Malformed, StreamCheck


def chunk(content: str | None = None, role: str | None = None, finish: str | None = None, **fields: object) -> bytes:
    delta = {k: v for k, v in (("role", role), ("content", content)) if v is not None}
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 100, "model": "m"}
    return json.dumps({**base, **fields, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).encode()


def test_a_well_formed_stream_passes_and_counts_content() -> None:
    check = StreamCheck()
    assert not check.feed(chunk(role="assistant", content=""))
    assert check.feed(chunk("Hel")) and check.feed(chunk("lo"))
    assert not check.feed(chunk(finish="stop"))
    check.feed(b"[DONE]")
    assert check.done and check.content_chunks == 2 and not check.created_changed


def test_a_changing_created_is_a_deviation_but_a_changing_id_is_malformed() -> None:
    check = StreamCheck()
    check.feed(chunk(role="assistant"))
    check.feed(chunk("a", created=101))
    assert check.created_changed
    with pytest.raises(Malformed, match="id changed"):
        check.feed(chunk("b", id="c2"))


@pytest.mark.parametrize(
    "frames",
    [
        [chunk("no role first")],
        [chunk(role="assistant"), b"[DONE]"],  # no finish_reason
        [chunk(role="assistant", finish="stop"), chunk("after the end")],
        [chunk(role="assistant"), b'{"id": "c1", "object": "chat.completion.chunk", "choices": 3}'],
    ],
)
def test_malformed_streams_are_caught(frames: list[bytes]) -> None:
    check = StreamCheck()
    with pytest.raises(Malformed):
        for frame in frames:
            check.feed(frame)


def test_median_run_takes_medians_and_counts_every_error() -> None:
    runs = [
        {"output_tokens_per_s": rate, "ttft_p50_ms": ttft, "itl_p50_ms": rate, "errors": errors, "extra": {}}
        for rate, ttft, errors in ((90.0, 50.0, 0), (70.0, 120.0, 1), (80.0, 130.0, 0))
    ]
    chosen = median_run(runs)
    # Throughput and TTFT are each the median over runs; the rest comes from the median-throughput run.
    assert (chosen["output_tokens_per_s"], chosen["ttft_p50_ms"], chosen["itl_p50_ms"]) == (80.0, 120.0, 80.0)
    assert chosen["errors"] == 1
    assert chosen["extra"]["tokens_per_s_runs"] == [90.0, 70.0, 80.0]


def test_percentiles_interpolate_between_ranks_so_p50_is_the_median() -> None:
    assert percentile([40.0, 10.0, 30.0, 20.0], 50) == 25.0
    assert percentile([float(v) for v in range(12)], 50) == 5.5
    assert percentile([10.0, 20.0, 30.0], 50) == 20.0
    assert percentile([float(v) for v in range(101)], 95) == 95.0
    assert percentile([7.0], 95) == 7.0 and math.isnan(percentile([], 50))


def test_of_an_even_number_of_runs_the_median_is_the_mean_of_the_two_middle_ones() -> None:
    # Ten rounds have no middle run: taking the lower of the two middle ones read a pass's ratio 2.4 points low.
    runs = [
        {"output_tokens_per_s": rate, "ttft_p50_ms": ttft, "itl_p50_ms": rate, "extra": {"steps": profile}}
        for rate, ttft, profile in (
            (90.0, 50.0, step_profile(10, 1.0, 40, 1.1)),
            (70.0, 120.0, step_profile(10, 2.0, 40, 2.1)),
            (80.0, 130.0, step_profile(10, 3.0, 40, 3.1)),
            (60.0, 20.0, step_profile(10, 4.0, 40, 4.1)),
        )
    ]
    chosen = median_run(runs)
    assert (chosen["output_tokens_per_s"], chosen["ttft_p50_ms"], chosen["extra"]["steps"]["step_ms"]) == (
        75.0,
        85.0,
        250.0,
    )
    # What has no median of its own comes from a real run: the lower of the two middle ones by throughput.
    assert chosen["itl_p50_ms"] == 70.0


def test_the_engine_ratio_is_the_median_of_each_rounds_own_ratio() -> None:
    def runs(*rates: float, ttfts: tuple[float, ...] = (1.0, 1.0, 1.0)) -> list[dict[str, Any]]:
        return [
            {
                "target": "t",
                "concurrency": 64,
                "output_tokens_per_s": rate,
                "ttft_p50_ms": ttft,
                "itl_p50_ms": 1.0,
                "itl_p95_ms": 1.0,
                "errors": 0,
                "malformed_chunks": 0,
                # 64 sequences a step at 64 / rate seconds a step, in steps 98% of the time.
                "extra": {"steps": step_profile(100, 100 * 64 / rate, 6400, 100 * 64 / rate / 0.98)},
            }
            for rate, ttft in zip(rates, ttfts, strict=True)
        ]

    # The machine ran fast in round 2: the medians of the rates would say 100%, the rounds say 95%. Likewise the
    # medians of TTFT would say +0 ms (30 against 30), the rounds +5 ms.
    engine = runs(100.0, 200.0, 90.0, ttfts=(30.0, 20.0, 40.0))
    ours = runs(95.0, 190.0, 100.0, ttfts=(35.0, 25.0, 30.0))
    assert paired_ratios(ours, engine) == [0.95, 0.95, 1.1111]
    assert paired_ttft_gaps(ours, engine) == [5.0, 5.0, -10.0]
    # Steps as long as 64 sequences at each round's rate: 100 / 95, 200 / 190, 90 / 100 of the engine's.
    assert paired_step_ratios(ours, engine) == [1.0526, 1.0526, 0.9]
    engine_row = {**median_run(engine), "target": "engine"}
    ours_row = median_run(ours)
    ours_row["extra"].update(
        engine_ratio_runs=paired_ratios(ours, engine),
        engine_ttft_gap_ms_runs=paired_ttft_gaps(ours, engine),
        engine_step_ratio_runs=paired_step_ratios(ours, engine),
        loop_lag_ms={},
        http_cpu_seconds_per_1k_tokens=0.1,
        http_rss_mb=80.0,
        worker_rss_mb=[1000.0],
    )
    ours_row["target"] = "openarc"
    markdown = table([engine_row, ours_row], {"cold_start_s": 1.0, "warm_start_s": 1.0})
    assert "| 95.0% [95.0% … 111.1%] |" in markdown
    assert "| 100.0 [90 … 200] | 100.0 [95 … 190] |" in markdown
    assert "| 30.0 / 30.0 / - | +5.00 [-10 … +5] |" in markdown
    # The step table's columns are medians over the runs (engine 100 tok/s → 640 ms a step, ours 100 → 640), but
    # the ratio is the rounds' own: OpenArc's steps were 5% longer in two rounds of three.
    assert "| 64 | 640.0 / 640.0 | 1.053 [0.900 … 1.053] | 64.0 / 64.0 | 98.0% / 98.0% |" in markdown


def test_short_levels_run_more_requests_per_slot_up_to_the_cap() -> None:
    assert [level_requests(c, 4) for c in (1, 4, 16, 64, 128)] == [16, 64, 256, 256, 512]
    assert level_requests(64, 8) == 512


def test_the_runners_runs_are_a_few_waves_and_never_below_the_minimum() -> None:
    assert [run_requests(c, 3) for c in (1, 4, 16, 64)] == [16, 16, 48, 192]
    assert run_requests(16, 1) == 16 and run_requests(64, 2) == 128


def test_the_step_profile_says_how_long_how_full_and_how_busy() -> None:
    assert step_profile(10, 0.5, 160, 1.0) == {"steps": 10, "step_ms": 50.0, "mean_batch": 16.0, "busy": 0.5}
    idle = step_profile(0, 0.0, 0, 1.0)
    assert idle["steps"] == 0 and all(math.isnan(idle[key]) for key in ("step_ms", "mean_batch", "busy"))
