"""Replica choice: the ready replica with the fewest active sequences, ties broken round-robin."""

from __future__ import annotations

from collections.abc import Sequence

from openarc.engine.replica import Replica, ReplicaState


class Router:
    def __init__(self) -> None:
        self._next = 0

    def pick(self, replicas: Sequence[Replica]) -> Replica | None:
        best: Replica | None = None
        count = len(replicas)
        for offset in range(count):
            index = (self._next + offset) % count
            replica = replicas[index]
            if replica.state is ReplicaState.READY and (best is None or replica.active < best.active):
                best, best_index = replica, index
        if best is not None:
            self._next = best_index + 1
        return best
