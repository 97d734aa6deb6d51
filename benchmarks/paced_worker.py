"""A worker without a model: it answers the engine's protocol and "generates" one token per request every
step, at a fixed step rate, using next to no CPU. Run behind a real HTTP process (benchmarks/paced_server.py),
it leaves only the serving layer's own cost to measure: HTTP-process CPU per token, event-loop lag."""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import socket
import sys
import time
from dataclasses import dataclass

from openarc.ipc import AbortRequest, AddRequest, RequestOutput, Shutdown, StepReport, WorkerReady, WorkerStats
from openarc.worker.channel import CommandChannel, EngineGone

STEP_SECONDS = float(os.environ.get("PACED_STEP_MS", "20")) / 1000
PROMPT_TOKENS = 30
TOKEN_TEXT = " word"


@dataclass
class Request:
    rid: int
    left: int
    reported: bool = False
    # Tokens held back, as the real worker holds them under `stream_interval` (the first is never held).
    held: int = 0


def serve(channel: CommandChannel, sock: socket.socket) -> None:
    interval = channel.receive_load().stream_interval
    channel.send(WorkerReady(pid=os.getpid(), load_seconds=0.0, context_length=8192, source_path="paced"))
    active: dict[int, Request] = {}
    stats = WorkerStats()
    next_step = time.monotonic()
    while True:
        commands = channel.receive(block=not active)
        if not active:
            next_step = time.monotonic()
        for command in commands:
            if isinstance(command, Shutdown):
                return
            if isinstance(command, AddRequest):
                active[command.rid] = Request(command.rid, command.params.max_tokens or 16)
            elif isinstance(command, AbortRequest):
                active.pop(command.rid, None)
        if not active:
            continue
        # The "step": wait for its time, still taking commands as they come.
        wait = next_step - time.monotonic()
        if wait > 0:
            select.select([sock], [], [], wait)
            if time.monotonic() < next_step:
                continue
        next_step += STEP_SECONDS
        outputs = []
        batch = len(active)
        for request in list(active.values()):
            request.left -= 1
            request.held += 1
            if request.reported and request.left and request.held < interval:
                continue
            output = RequestOutput(request.rid, text=TOKEN_TEXT * request.held, tokens=request.held)
            request.held = 0
            if not request.reported:
                output.prompt_tokens, request.reported = PROMPT_TOKENS, True
            if request.left == 0:
                output.finish_reason = "length"
                del active[request.rid]
            outputs.append(output)
        stats.steps += 1
        stats.max_batch = max(stats.max_batch, batch)
        stats.generated_tokens += batch
        stats.active = len(active)
        channel.send(StepReport(outputs, stats))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    sock = socket.socket(fileno=args.fd)
    with contextlib.suppress(EngineGone, BrokenPipeError, ConnectionResetError):
        serve(CommandChannel(sock), sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
