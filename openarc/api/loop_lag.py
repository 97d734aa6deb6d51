"""Event-loop lag of the HTTP process: how late a 10 ms timer fires. Anything that blocks the loop shows here."""

from __future__ import annotations

import asyncio
import time
from collections import deque

INTERVAL_SECONDS = 0.01
KEEP_SAMPLES = 60_000  # ten minutes at 100 samples a second


class LoopLagMonitor:
    def __init__(self) -> None:
        self.samples_ms: deque[float] = deque(maxlen=KEEP_SAMPLES)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop lag monitor")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            due = time.perf_counter() + INTERVAL_SECONDS
            await asyncio.sleep(INTERVAL_SECONDS)
            self.samples_ms.append(max(0.0, (time.perf_counter() - due) * 1000))

    def summary(self) -> dict[str, float | int]:
        ordered = sorted(self.samples_ms)
        if not ordered:
            return {"samples": 0}

        def at(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

        return {"samples": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": round(ordered[-1], 3)}
