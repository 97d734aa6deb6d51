from __future__ import annotations

import asyncio

from openarc.engine.replica import Replica, ReplicaState
from openarc.engine.router import Router
from openarc.engine.stream import RequestStream
from openarc.ipc import LoadModel


def replicas(count: int) -> list[Replica]:
    spec = LoadModel(model_id="m", source="/m.gguf", device="CPU", scheduler={}, properties={})
    made = [Replica(f"m/CPU#{i}", spec, "info") for i in range(count)]
    for replica in made:
        replica.state = ReplicaState.READY
    return made


def busy(replica: Replica, count: int) -> None:
    notify = asyncio.Event()
    for rid in range(count):
        replica.streams[rid] = RequestStream(rid, replica.name, notify)


def test_ties_rotate_round_robin() -> None:
    pool, router = replicas(3), Router()
    assert [router.pick(pool).name for _ in range(6)] == [r.name for r in pool] * 2  # type: ignore[union-attr]


def test_fewest_active_wins() -> None:
    pool, router = replicas(3), Router()
    busy(pool[0], 2)
    busy(pool[1], 1)
    assert router.pick(pool) is pool[2]
    busy(pool[2], 3)
    assert router.pick(pool) is pool[1]


def test_unready_replicas_are_skipped() -> None:
    pool, router = replicas(3), Router()
    pool[0].state = ReplicaState.RESTARTING
    pool[2].state = ReplicaState.FAILED
    assert {router.pick(pool) for _ in range(4)} == {pool[1]}
    pool[1].state = ReplicaState.LOADING
    assert router.pick(pool) is None
