"""The loopback floor benchmark: every chunk arrives, and each side's CPU is counted per chunk."""

from __future__ import annotations

import time

from benchmarks.loopback_floor import _work, measure


def test_every_chunk_reaches_the_reader_and_both_sides_are_charged() -> None:
    row = measure(streams=3, busy=1, gap_us=0.0, steps=20, step_ms=2.0, chunk_bytes=150)
    # measure() raises if a byte went missing; a send and a read each cost the kernel a few µs at least.
    assert row["chunks"] == 60 and row["busy"] == 1
    assert row["writer_us_per_chunk"] > 0 and row["reader_us_per_chunk"] > 0


def test_the_work_between_writes_is_left_out_of_the_writer_figure() -> None:
    before = time.process_time()
    worked = _work(0.05)
    spent = time.process_time() - before
    # The returned CPU is the work's own, so the writer's figure can subtract it.
    assert 0.03 <= worked <= spent + 1e-9
