"""How long the worker may hold its next step for requests that replace the ones that just ended.

A client that keeps N requests in flight (an agent pool, a batch job) sends its next request as soon as one
ends. The turnaround (report → HTTP process → client → HTTP process → worker) takes a few ms, and by then the
worker is inside the next step, which holds the GIL: the new request waits the whole step, often a long one
carrying other prompts' prefill. Measured at 64 streams on 2 cores: TTFT twice the in-process engine's.

Holding the step costs every running request the time held; admitting a successor one step earlier gains one
step of one slot. So the budget is the break-even, ended * last step / running, within the configured limit,
and the caller stops holding as soon as as many requests arrived as ended. When nobody comes (open traffic),
a hold costs at most what the ended requests' successors would have gained: with 64 running and one ending,
1/64 of a step. After a hold that nobody came to, the worker holds no more until a request arrives again: when
clients have stopped sending (a closed loop's last requests, a batch job's end), no step waits at all.

When every running request ended in one step (a cohort sent together, of one length), no running request pays for
a hold, and not holding costs the most: the first successor to arrive (often one sent while that step ran) would
run a step of its own, and the others, arriving meanwhile, wait for it. Measured at 16 streams: every wave began
with a one-sequence step of ~40 ms, 1.6% of the run. So then the hold lasts up to the limit.
"""

from __future__ import annotations


def refill_budget(limit_seconds: float, ended: int, running: int, last_step_seconds: float) -> float:
    """Seconds to hold the next step for successors of `ended` requests, with `running` ones left to run."""
    if limit_seconds <= 0 or ended <= 0:
        return 0.0
    if running <= 0:
        return limit_seconds
    return min(limit_seconds, ended * last_step_seconds / running)
