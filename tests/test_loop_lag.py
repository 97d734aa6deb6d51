from __future__ import annotations

import asyncio
import time

from openarc.api.loop_lag import BUSY_INTERVAL_SECONDS, BUSY_JITTER, IDLE_INTERVAL_SECONDS, LoopLagMonitor


async def _next_sample(monitor: LoopLagMonitor, count: int) -> float:
    # Yield to the loop until the timer callback has run: it sets no event to wait on.
    while len(monitor.samples_ms) < count:  # noqa: ASYNC110
        await asyncio.sleep(0)
    return monitor.samples_ms[count - 1]


def test_a_blocked_loop_shows_as_lag() -> None:
    async def main() -> float:
        monitor = LoopLagMonitor(busy=lambda: True)
        monitor.start()
        # Block 40 ms past the latest the first tick can be due.
        time.sleep(BUSY_INTERVAL_SECONDS * (1 + BUSY_JITTER) + 0.04)  # noqa: ASYNC251 - blocking the loop is the point
        try:
            return await asyncio.wait_for(_next_sample(monitor, 1), 5)
        finally:
            monitor.stop()

    assert asyncio.run(main()) >= 39


def test_ticks_often_only_while_busy() -> None:
    busy = False

    async def main() -> tuple[float, float]:
        monitor = LoopLagMonitor(busy=lambda: busy)
        loop = asyncio.get_running_loop()
        monitor.start()
        assert monitor._timer is not None
        idle_wait = monitor._timer.when() - loop.time()
        monitor.stop()
        nonlocal busy
        busy = True
        monitor.start()
        assert monitor._timer is not None
        busy_wait = monitor._timer.when() - loop.time()
        monitor.stop()
        return idle_wait, busy_wait

    idle_wait, busy_wait = asyncio.run(main())
    assert IDLE_INTERVAL_SECONDS - 0.1 < idle_wait <= IDLE_INTERVAL_SECONDS
    assert busy_wait <= BUSY_INTERVAL_SECONDS * (1 + BUSY_JITTER)


def test_busy_ticks_are_jittered_around_the_mean() -> None:
    """Periodic ticks could lock onto the engine's step cadence and sample one phase of it."""

    async def main() -> list[float]:
        monitor = LoopLagMonitor(busy=lambda: True)
        loop = asyncio.get_running_loop()
        waits = []
        for _ in range(400):
            monitor.start()
            assert monitor._timer is not None
            waits.append(monitor._timer.when() - loop.time())
            monitor.stop()
        return waits

    waits = asyncio.run(main())
    low, high = BUSY_INTERVAL_SECONDS * (1 - BUSY_JITTER), BUSY_INTERVAL_SECONDS * (1 + BUSY_JITTER)
    assert all(low - 0.005 < wait <= high for wait in waits)
    assert max(waits) - min(waits) > BUSY_INTERVAL_SECONDS / 2
    assert abs(sum(waits) / len(waits) - BUSY_INTERVAL_SECONDS) < BUSY_INTERVAL_SECONDS * 0.1


def test_summary_percentiles() -> None:
    monitor = LoopLagMonitor()
    assert monitor.summary() == {"samples": 0}
    monitor.samples_ms.extend(float(v) for v in range(1, 101))
    assert monitor.summary() == {"samples": 100, "p50_ms": 51.0, "p99_ms": 100.0, "max_ms": 100.0}
