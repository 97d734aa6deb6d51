"""The kernel's floor under a streamed token: what one small write to a loopback TCP socket costs the process
that writes it and the one that reads it, with no HTTP, no SSE and no Python work per chunk besides the calls.

A writer sends one chunk (`--chunk-bytes`, default the size of an SSE chat chunk) to each of C sockets once a
step, as OpenArc's HTTP process fans one worker report out to C streams; a reader process on the load
generator's event loop receives them and does nothing with them. `--busy N` runs N processes beside them that
only burn CPU, as the inference threads keep both cores busy while a server streams (a woken reader must then
preempt one). `--gap-us` spaces the writes by that much CPU work, as a server's own code runs between two
streams' writes (a reader that kept up is asleep again by the next one); the writer's figure leaves that work
out. It prints each side's CPU per chunk in µs: whatever a server and its clients do per streamed token costs
at least their sum on this machine.

    python -m benchmarks.loopback_floor -c 16 64 --busy 0 2 --gap-us 0 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import socket
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

from openarc import event_loop

_spawn = multiprocessing.get_context("spawn")


def _burn(stop: Event) -> None:
    while not stop.is_set():
        pass


async def _read_streams(port: int, streams: int, report: Connection) -> None:
    loop = asyncio.get_running_loop()
    closed = asyncio.Event()
    open_streams = streams
    received = 0

    class Discard(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            nonlocal received
            received += len(data)

        def connection_lost(self, exc: Exception | None) -> None:
            nonlocal open_streams
            open_streams -= 1
            if not open_streams:
                closed.set()

    for _ in range(streams):
        await loop.create_connection(Discard, "127.0.0.1", port)
    before = resource.getrusage(resource.RUSAGE_SELF)
    report.send("connected")
    await closed.wait()
    after = resource.getrusage(resource.RUSAGE_SELF)
    report.send((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, received))


def _reader(port: int, streams: int, report: Connection) -> None:
    event_loop.run(_read_streams(port, streams, report), event_loop.resolve("auto"))


def _work(seconds: float) -> float:
    """Burn about `seconds` of CPU; returns the CPU seconds it took, to be left out of the writer's figure."""
    started = time.process_time()
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass
    return time.process_time() - started


def _write_steps(sockets: list[socket.socket], steps: int, step_s: float, gap_s: float, chunk: bytes) -> float:
    """The writer's CPU seconds for `steps` steps of one chunk per socket, each step's wake-up included."""
    started = time.process_time()
    worked = 0.0
    deadline = time.monotonic()
    for _ in range(steps):
        deadline += step_s
        for sock in sockets:
            if gap_s:
                worked += _work(gap_s)
            sock.sendall(chunk)
        time.sleep(max(0.0, deadline - time.monotonic()))
    return time.process_time() - started - worked


def measure(streams: int, busy: int, gap_us: float, steps: int, step_ms: float, chunk_bytes: int) -> dict[str, Any]:
    stop = _spawn.Event()
    burners = [_spawn.Process(target=_burn, args=(stop,), daemon=True) for _ in range(busy)]
    for burner in burners:
        burner.start()
    ours, theirs = _spawn.Pipe()
    with socket.create_server(("127.0.0.1", 0), backlog=streams) as listener:
        port = listener.getsockname()[1]
        reader = _spawn.Process(target=_reader, args=(port, streams, theirs), daemon=True)
        reader.start()
        sockets = []
        try:
            for _ in range(streams):
                sock, _address = listener.accept()
                # As every asyncio and uvloop server socket: a chunk leaves at once, not after the last one's ACK.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sockets.append(sock)
            if ours.recv() != "connected":
                raise RuntimeError("the reader did not connect")
            writer_seconds = _write_steps(sockets, steps, step_ms / 1000, gap_us / 1e6, b"x" * chunk_bytes)
        finally:
            for sock in sockets:
                sock.close()
            stop.set()
        reader_seconds, received = ours.recv()
        reader.join(30)
        for burner in burners:
            burner.join(30)
    chunks = steps * streams
    if received != chunks * chunk_bytes:
        raise RuntimeError(f"the reader got {received} bytes of {chunks * chunk_bytes}")
    return {
        "concurrency": streams,
        "busy": busy,
        "gap_us": gap_us,
        "chunks": chunks,
        "writer_us_per_chunk": round(1e6 * writer_seconds / chunks, 1),
        "reader_us_per_chunk": round(1e6 * reader_seconds / chunks, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 2], help="processes that only burn CPU beside")
    parser.add_argument("--gap-us", type=float, nargs="+", default=[0.0, 60.0], help="CPU work between writes")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--step-ms", type=float, default=27.0, help="a step of the engine at C = 16 on a fast day")
    parser.add_argument("--chunk-bytes", type=int, default=200)
    args = parser.parse_args()
    rows = [
        measure(streams, busy, gap_us, args.steps, args.step_ms, args.chunk_bytes)
        for busy in args.busy
        for gap_us in args.gap_us
        for streams in args.concurrency
    ]
    print(json.dumps({"step_ms": args.step_ms, "chunk_bytes": args.chunk_bytes, "rows": rows}))
    print("| C | busy processes | work between writes (µs) | writer CPU µs/chunk | reader CPU µs/chunk | both |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        both = round(row["writer_us_per_chunk"] + row["reader_us_per_chunk"], 1)
        print(
            f"| {row['concurrency']} | {row['busy']} | {row['gap_us']:g} | {row['writer_us_per_chunk']} "
            f"| {row['reader_us_per_chunk']} | {both} |"
        )


if __name__ == "__main__":
    main()
