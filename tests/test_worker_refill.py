"""The worker loop on the real engine: a successor that arrives while the step is held joins the very next step.

The channel is scripted, so "arrives during the hold" and "arrives during the next step" are exact, not timed:
a command offered to `receive_within` came during the hold; one offered only to the `receive` after the next
step came while that step ran.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from openarc.ipc import AddRequest, Command, LoadModel, SamplingParams, Shutdown, StepReport, TextPrompt
from openarc.worker.loop import WorkerLoop
from openarc.worker.pipeline import ModelRunner


@pytest.fixture(scope="module")
def runner(smollm2_gguf: Path) -> ModelRunner:
    spec = LoadModel(model_id="m", source=str(smollm2_gguf), device="CPU", scheduler={"cache_size": 1}, properties={})
    return ModelRunner(spec)


def add(rid: int, max_tokens: int) -> AddRequest:
    params = SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True)
    return AddRequest(rid, TextPrompt("The capital of France is"), params)


class ClosedLoopChannel:
    """Request 1 (short) and 2 (long) run together; when 1 ends, its successor 3 is sent at once. It reaches the
    worker during the hold when the worker holds, else while the next step runs."""

    def __init__(self) -> None:
        self.reports: list[StepReport] = []
        self.successor: list[Command] = []
        self.late: list[Command] = []

    def receive(self, block: bool) -> list[Command]:
        if not self.reports:
            return [add(1, 3), add(2, 40)]
        late, self.late = self.late, []
        if self.successor:
            # Not taken during a hold: it lands while the next step runs, and is read after it.
            self.late, self.successor = self.successor, []
        ended = {o.rid for r in self.reports for o in r.outputs if o.finish_reason}
        if {2, 3} <= ended:
            return [*late, Shutdown()]
        return late

    def receive_within(self, seconds: float) -> list[Command]:
        successor, self.successor = self.successor, []
        return successor

    def send(self, report: StepReport) -> None:
        self.reports.append(report)
        if any(o.rid == 1 and o.finish_reason for o in report.outputs):
            self.successor = [add(3, 3)]


def first_token_report(reports: list[StepReport], rid: int) -> int:
    return next(i for i, r in enumerate(reports) for o in r.outputs if o.rid == rid and o.tokens)


def end_report(reports: list[StepReport], rid: int) -> int:
    return next(i for i, r in enumerate(reports) for o in r.outputs if o.rid == rid and o.finish_reason)


@pytest.mark.parametrize(("hold", "steps_later"), [(0.5, 1), (0.0, 2)])
def test_a_successor_taken_during_the_hold_gets_its_first_token_from_the_next_step(
    runner: ModelRunner, hold: float, steps_later: int
) -> None:
    channel = ClosedLoopChannel()
    WorkerLoop(runner, channel, max_num_seqs=8, refill_wait_seconds=hold).run()  # type: ignore[arg-type]
    reports = channel.reports
    ended = end_report(reports, 1)
    assert first_token_report(reports, 3) == ended + steps_later
    # Request 2 was running all along: the hold delayed a running request, the case its break-even budget is for.
    assert end_report(reports, 2) > ended + steps_later
    texts = {rid: "".join(o.text for r in reports for o in r.outputs if o.rid == rid) for rid in (1, 3)}
    assert texts[1] and texts[3] == texts[1]  # same prompt, greedy, same length


class QuietClientsChannel:
    """Requests 1 (3 tokens) and 3 (6 tokens) end while 2 (40 tokens) runs, and nobody replaces them; after 3
    ended a new client sends 4 (3 tokens), which the worker finds at its `lands_at`-th read after that report (1: it
    came while the step that ended 3 ran; 2: just after the worker decided whether to hold for 3's successor).
    Records which ended requests each hold (a receive_within call) came after."""

    def __init__(self, lands_at: int) -> None:
        self.reports: list[StepReport] = []
        self.holds_after: set[frozenset[int]] = set()
        self.lands_at = lands_at
        self.reads_since_3_ended = 0

    def ended(self) -> frozenset[int]:
        return frozenset(o.rid for r in self.reports for o in r.outputs if o.finish_reason)

    def receive(self, block: bool) -> list[Command]:
        if not self.reports:
            return [add(1, 3), add(2, 40), add(3, 6)]
        ended = self.ended()
        if 2 in ended:
            return [Shutdown()]
        if 3 in ended:
            self.reads_since_3_ended += 1
            if self.reads_since_3_ended == self.lands_at:
                return [add(4, 3)]
        return []

    def receive_within(self, seconds: float) -> list[Command]:
        self.holds_after.add(self.ended())
        return []

    def send(self, report: StepReport) -> None:
        self.reports.append(report)


@pytest.mark.parametrize(
    ("lands_at", "held_after"),
    [
        # 1's end was held for (in vain); 3's was not; 4 came after that, so its end was held for again.
        (2, {frozenset({1}), frozenset({1, 3, 4})}),
        # 4 came while the step that ended 3 ran: clients are sending, so 3's end is held for (in vain), 4's not.
        (1, {frozenset({1}), frozenset({1, 3})}),
    ],
)
def test_no_hold_after_one_nobody_came_to_until_a_request_arrives(
    runner: ModelRunner, lands_at: int, held_after: set[frozenset[int]]
) -> None:
    channel = QuietClientsChannel(lands_at)
    WorkerLoop(runner, channel, max_num_seqs=8, refill_wait_seconds=0.05).run()  # type: ignore[arg-type]
    assert end_report(channel.reports, 1) < end_report(channel.reports, 3) < end_report(channel.reports, 4)
    assert channel.holds_after == held_after


class CohortChannel:
    """Requests 1 and 2 (same prompt and length) end in one step with nothing else running. Their successors come
    one at a time: 3 at once, 4 a little later (during a hold, or else while the step the worker started with 3
    alone runs). With `refused`, the only request to come is one whose prompt is too long for the model."""

    def __init__(self, refused: bool = False) -> None:
        self.reports: list[StepReport] = []
        self.successors: list[list[Command]] = []
        self.refused = refused

    def ended(self) -> set[int]:
        return {o.rid for r in self.reports for o in r.outputs if o.finish_reason or o.error}

    def receive(self, block: bool) -> list[Command]:
        if not self.reports:
            return [add(1, 3), add(2, 3)]
        if {3, 4} <= self.ended() or (self.refused and 5 in self.ended()):
            return [Shutdown()]
        if self.successors:
            return self.successors.pop(0)
        # The worker would sleep here until a client sends something, and every client is waiting for it.
        assert not block, "the worker blocked with an answer it had not sent"
        return []

    def receive_within(self, seconds: float) -> list[Command]:
        return self.successors.pop(0) if self.successors else []

    def send(self, report: StepReport) -> None:
        self.reports.append(report)
        if {1, 2} <= self.ended() and not self.successors and 3 not in {o.rid for r in self.reports for o in r.outputs}:
            if self.refused:
                self.successors = [[AddRequest(5, TextPrompt("hello " * 9000), SamplingParams())]]
            else:
                self.successors = [[add(3, 3)], [add(4, 3)]]


@pytest.mark.parametrize(("hold", "same_step"), [(0.5, True), (0.0, False)])
def test_a_cohort_that_ended_together_starts_again_in_one_step(
    runner: ModelRunner, hold: float, same_step: bool
) -> None:
    channel = CohortChannel()
    WorkerLoop(runner, channel, max_num_seqs=8, refill_wait_seconds=hold).run()  # type: ignore[arg-type]
    reports = channel.reports
    assert end_report(reports, 1) == end_report(reports, 2)
    assert (first_token_report(reports, 3) == first_token_report(reports, 4)) is same_step


def test_a_request_refused_during_a_hold_is_answered_at_once(runner: ModelRunner) -> None:
    # The hold took the refused request in with nothing left to run: the worker must send its error before it
    # sleeps for the next command (it did not, and the client waited for ever).
    channel = CohortChannel(refused=True)
    WorkerLoop(runner, channel, max_num_seqs=8, refill_wait_seconds=0.05).run()  # type: ignore[arg-type]
    refusal = next(o for r in channel.reports for o in r.outputs if o.rid == 5)
    assert refusal.error_kind == "context_length"
