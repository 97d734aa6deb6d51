"""The worker holds its next step for the requests that replace ended ones, and only as long as it pays."""

from __future__ import annotations

import socket
import time
from typing import Any

import msgspec
import pytest

from openarc.ipc import AbortRequest, AddRequest, Command, SamplingParams, Shutdown, TextPrompt, frame
from openarc.worker.channel import CommandChannel
from openarc.worker.loop import PreparedRequest, WorkerLoop
from openarc.worker.refill import refill_budget


def add(rid: int) -> AddRequest:
    return AddRequest(rid, TextPrompt("hi"), SamplingParams(max_tokens=4))


class ScriptedChannel:
    """Hands out one scripted batch of commands per receive_within call, then nothing; `sent_during_step` is what
    a non-blocking receive finds (requests that came while the step ran)."""

    def __init__(self, batches: list[list[Command]]) -> None:
        self.batches = batches
        self.sent_during_step: list[Command] = []
        self.timeouts: list[float] = []

    def receive(self, block: bool) -> list[Command]:
        assert not block
        commands, self.sent_during_step = self.sent_during_step, []
        return commands

    def receive_within(self, seconds: float) -> list[Command]:
        self.timeouts.append(seconds)
        return self.batches.pop(0) if self.batches else []


def worker(channel: ScriptedChannel, limit_seconds: float, max_num_seqs: int = 8) -> WorkerLoop:
    loop = WorkerLoop(runner=None, channel=channel, max_num_seqs=max_num_seqs, refill_wait_seconds=limit_seconds)  # type: ignore[arg-type]
    loop.last_step_seconds = 0.2

    def prepare(command: AddRequest) -> None:
        # Tokenizing needs a model; what matters here is that the request now waits for admission.
        loop.waiting.append(PreparedRequest(command.rid, None, 1, None, None))  # type: ignore[arg-type]

    loop.prepare = prepare  # type: ignore[method-assign,assignment]
    return loop


def test_the_budget_is_the_break_even_within_the_limit() -> None:
    # 6 ended, 58 still running, 180 ms steps: holding up to 18.6 ms costs what 6 slots gain in one step.
    assert refill_budget(0.02, ended=6, running=58, last_step_seconds=0.18) == pytest.approx(6 * 0.18 / 58)
    assert refill_budget(0.02, ended=6, running=10, last_step_seconds=0.18) == 0.02
    assert refill_budget(0.02, ended=0, running=58, last_step_seconds=0.18) == 0
    # Nothing left running: nobody running pays for a hold, so it may last the limit.
    assert refill_budget(0.02, ended=3, running=0, last_step_seconds=0.18) == 0.02
    assert refill_budget(0, ended=6, running=58, last_step_seconds=0.18) == 0


def test_a_hold_ends_as_soon_as_as_many_requests_came_as_ended() -> None:
    channel = ScriptedChannel([[add(1)], [AbortRequest(9)], [add(2)], [add(3)]])
    loop = worker(channel, limit_seconds=1.0)
    loop.active = {i: object() for i in range(4)}  # type: ignore[misc]
    loop.hold_for_successors(ended=2)
    assert [r.rid for r in loop.waiting] == [1, 2]
    assert channel.batches == [[add(3)]]  # left for the next step's read
    budget = 2 * 0.2 / 4
    assert len(channel.timeouts) == 3 and all(0 < t <= budget for t in channel.timeouts)


def test_when_a_whole_cohort_ended_the_hold_gathers_its_successors_into_one_step() -> None:
    # 15 requests sent together ended in one step; the successor of one that ended a step earlier came during
    # that step. Without a hold it would run a step of its own while the other 15 arrive and wait for it.
    channel = ScriptedChannel([[add(2), add(3)], [add(i) for i in range(4, 17)]])
    channel.sent_during_step = [add(1)]
    loop = worker(channel, limit_seconds=1.0, max_num_seqs=16)
    loop.hold_for_successors(ended=15)
    assert [r.rid for r in loop.waiting] == list(range(1, 17))
    assert len(channel.timeouts) == 2 and all(0 < t <= 1.0 for t in channel.timeouts)


def test_a_hold_nobody_answers_lasts_the_budget() -> None:
    channel = ScriptedChannel([])
    loop = worker(channel, limit_seconds=0.002)
    loop.active = {i: object() for i in range(4)}  # type: ignore[misc]
    started = time.perf_counter()
    loop.hold_for_successors(ended=1)
    assert time.perf_counter() - started >= 0.002
    assert channel.timeouts and all(0 < t <= 0.002 for t in channel.timeouts)


def test_after_a_hold_nobody_came_to_the_worker_holds_no_more_until_a_request_arrives() -> None:
    channel = ScriptedChannel([])
    loop = worker(channel, limit_seconds=0.002)
    loop.active = {i: object() for i in range(4)}  # type: ignore[misc]
    loop.hold_for_successors(ended=1)
    waited = len(channel.timeouts)
    assert waited > 0
    loop.hold_for_successors(ended=2)
    assert len(channel.timeouts) == waited  # no wait at all
    loop.handle_command(add(5))  # read after a step: clients are sending again
    channel.batches = [[add(6)]]
    loop.hold_for_successors(ended=1)
    assert len(channel.timeouts) == waited + 1 and [r.rid for r in loop.waiting] == [5, 6]


def test_a_request_sent_during_the_step_after_a_hold_nobody_came_to_brings_the_hold_back() -> None:
    # One request ended with a break-even budget shorter than the clients' turnaround: its successor came during
    # the next step. When the next requests end, that late successor is read first, and the worker holds for
    # theirs (before, it did not hold until its next read, and those successors waited a whole step more).
    channel = ScriptedChannel([])
    loop = worker(channel, limit_seconds=0.002)
    loop.active = {i: object() for i in range(4)}  # type: ignore[misc]
    loop.hold_for_successors(ended=1)
    assert not loop.successors_expected
    waited = len(channel.timeouts)
    channel.sent_during_step = [add(5)]
    channel.batches = [[add(6)], [add(7)]]
    loop.hold_for_successors(ended=2)
    assert len(channel.timeouts) == waited + 2
    # The late successor is not counted as one of these two: the hold took both of theirs.
    assert [r.rid for r in loop.waiting] == [5, 6, 7]


def test_a_hold_that_got_some_successors_keeps_holding() -> None:
    channel = ScriptedChannel([[add(1)]])
    loop = worker(channel, limit_seconds=0.002)
    loop.active = {i: object() for i in range(4)}  # type: ignore[misc]
    loop.hold_for_successors(ended=2)  # one of two came: the other may just be late
    waited = len(channel.timeouts)
    loop.hold_for_successors(ended=1)
    assert len(channel.timeouts) > waited


def test_no_hold_when_the_worker_is_told_never_to() -> None:
    channel = ScriptedChannel([[add(1)]])
    loop = worker(channel, limit_seconds=0)
    loop.active = {i: object() for i in range(4)}  # type: ignore[misc]
    loop.hold_for_successors(ended=2)
    assert channel.timeouts == [] and not loop.waiting


def test_no_hold_when_new_requests_could_not_be_admitted_anyway() -> None:
    channel = ScriptedChannel([[add(1)]])
    loop = worker(channel, limit_seconds=1.0, max_num_seqs=4)
    loop.active = {i: object() for i in range(3)}  # type: ignore[misc]
    loop.waiting.append(PreparedRequest(7, None, 1, None, None))  # type: ignore[arg-type]
    loop.hold_for_successors(ended=1)
    assert channel.timeouts == [] and [r.rid for r in loop.waiting] == [7]


def test_shutdown_during_a_hold_stops_it_and_what_follows_is_ignored() -> None:
    channel = ScriptedChannel([[add(1), Shutdown(), add(2)]])
    loop = worker(channel, limit_seconds=1.0)
    loop.active = {0: object()}  # type: ignore[dict-item]
    loop.hold_for_successors(ended=3)
    assert loop.stopping and [r.rid for r in loop.waiting] == [1]
    assert len(channel.timeouts) == 1


def test_receive_within_returns_what_arrives_and_nothing_after_its_timeout() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        channel = CommandChannel(ours)
        assert channel.receive_within(0.001) == []
        encoder = msgspec.msgpack.Encoder()
        data = frame(add(5), encoder) + frame(AbortRequest(5), encoder)
        # Split mid-frame: the first half alone is no command yet.
        theirs.sendall(data[:7])
        assert channel.receive_within(0.001) == []
        theirs.sendall(data[7:])
        received: list[Any] = channel.receive_within(1.0)
        assert received == [add(5), AbortRequest(5)]
