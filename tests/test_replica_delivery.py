"""A step report reaches every stream, a few at a time, so the loop serves others between slices."""

from __future__ import annotations

import asyncio

from openarc.engine.replica import DELIVERY_SLICE, Replica
from openarc.engine.stream import RequestStream
from openarc.ipc import LoadModel, RequestOutput, StepReport, WorkerStats


def test_a_large_report_is_delivered_in_slices_with_the_loop_turning_between() -> None:
    async def main() -> None:
        spec = LoadModel(model_id="m", source="/m.gguf", device="CPU", scheduler={}, properties={})
        replica = Replica("m/CPU#0", spec, "info")
        count = 3 * DELIVERY_SLICE + 5
        streams = [RequestStream(rid, replica.name, asyncio.Event()) for rid in range(count)]
        replica.streams = {stream.rid: stream for stream in streams}
        replica.idle.clear()
        # What a response task would see when it runs during the delivery: how many streams had output by then.
        seen_during_delivery: list[int] = []
        asyncio.get_running_loop().call_soon(
            lambda: seen_during_delivery.append(sum(s.completion_tokens for s in streams))
        )
        outputs = [
            RequestOutput(rid, text="x", tokens=1, finish_reason="length" if rid % 2 else None) for rid in range(count)
        ]
        await replica._deliver(StepReport(outputs, WorkerStats(steps=7)))

        assert all(stream.completion_tokens == 1 for stream in streams)
        assert sorted(replica.streams) == list(range(0, count, 2))  # the finished ones are gone
        assert replica.stats.steps == 7 and not replica.idle.is_set()
        # The callback ran after the first slice and before the last one.
        assert seen_during_delivery and DELIVERY_SLICE <= seen_during_delivery[0] < count

    asyncio.run(main())


def test_delivering_the_last_outputs_marks_the_replica_idle() -> None:
    async def main() -> None:
        spec = LoadModel(model_id="m", source="/m.gguf", device="CPU", scheduler={}, properties={})
        replica = Replica("m/CPU#0", spec, "info")
        replica.streams = {1: RequestStream(1, replica.name, asyncio.Event())}
        replica.idle.clear()
        await replica._deliver(StepReport([RequestOutput(1, text="x", tokens=1, finish_reason="stop")], WorkerStats()))
        assert replica.streams == {} and replica.idle.is_set()

    asyncio.run(main())
