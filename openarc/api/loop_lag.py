"""Event-loop lag of the HTTP process: how late a timer fires. Anything that blocks the loop shows here.

The probe is a bare timer callback (no task, no future), and it ticks ~25 times a second only while requests
are in flight: an idle daemon wakes once a second. Under load every wake-up of this process takes a core from
the inference threads, and on a small machine the probe's own wake-ups cost more than any sample is worth:
at 100 Hz it was a quarter of the HTTP process's CPU at C = 16 (README, Performance). The ticks are jittered
so that they do not lock onto the engine's step cadence and sample one phase of it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable

# Ticks under load: uniformly within ±50% of the mean, 25 a second on average.
BUSY_INTERVAL_SECONDS = 0.04
BUSY_JITTER = 0.5
IDLE_INTERVAL_SECONDS = 1.0
KEEP_SAMPLES = 15_000  # ten minutes of load at 25 samples a second


class LoopLagMonitor:
    def __init__(self, busy: Callable[[], bool] = lambda: True) -> None:
        self.samples_ms: deque[float] = deque(maxlen=KEEP_SAMPLES)
        self._busy = busy
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        if self._timer is None:
            self._loop = asyncio.get_running_loop()
            self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        assert self._loop is not None
        if self._busy():
            interval = BUSY_INTERVAL_SECONDS * random.uniform(1 - BUSY_JITTER, 1 + BUSY_JITTER)
        else:
            interval = IDLE_INTERVAL_SECONDS
        self._timer = self._loop.call_at(self._loop.time() + interval, self._tick, time.perf_counter() + interval)

    def _tick(self, due: float) -> None:
        self.samples_ms.append(max(0.0, (time.perf_counter() - due) * 1000))
        self._schedule()

    def summary(self) -> dict[str, float | int]:
        ordered = sorted(self.samples_ms)
        if not ordered:
            return {"samples": 0}

        def at(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

        return {"samples": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": round(ordered[-1], 3)}
