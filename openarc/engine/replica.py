"""One replica: a supervised worker process for one (model, device), and the asyncio side of its socket."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import sys
from typing import Any

import msgspec

from openarc.engine.stream import RequestStream
from openarc.ipc import (
    FRAME_HEADER,
    AbortRequest,
    AddRequest,
    ChatPrompt,
    Event,
    LoadModel,
    SamplingParams,
    Shutdown,
    StepReport,
    TextPrompt,
    WorkerFailed,
    WorkerReady,
    WorkerStats,
    frame,
)

log = logging.getLogger("openarc.engine")

RESTART_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
# Streams woken per event-loop turn when a step report arrives (see `_deliver`).
# 4 rather than 16: a new request's way in (read, parse, route, submit) takes a few loop turns, and each turn also
# runs this many streams' writes. Measured with benchmarks/http_overhead.py at C = 64: the same HTTP CPU per token
# (131-142 µs against 135-140) and a lower loop-lag p99 (2.1-3.3 ms against 4.0-4.8).
DELIVERY_SLICE = 4
# What `python -m` runs for a worker (benchmarks/paced_server.py swaps in a worker without a model).
WORKER_MODULE = "openarc.worker"
SHUTDOWN_GRACE_SECONDS = 10.0


class ReplicaState(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    RESTARTING = "restarting"
    FAILED = "failed"
    STOPPED = "stopped"


class WorkerExited(Exception):
    pass


class Replica:
    def __init__(self, name: str, spec: LoadModel, log_level: str) -> None:
        self.name = name
        self.spec = spec
        self.log_level = log_level
        self.state = ReplicaState.LOADING
        self.error: str | None = None
        self.pid: int | None = None
        self.context_length: int | None = None
        self.chat_template = ""
        self.tokenizer: dict[str, Any] = {}
        self.generation_defaults: dict[str, Any] = {}
        self.source_path: str | None = None
        self.load_seconds: float | None = None
        self.restarts = 0
        self.stats = WorkerStats()
        # Requests sent and not yet finished, as the HTTP process counts them: the router's load measure.
        self.streams: dict[int, RequestStream] = {}
        # Set while no request is in flight here: what a draining unload waits for.
        self.idle = asyncio.Event()
        self.idle.set()
        self.state_changed = asyncio.Event()
        self._process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[Event] = msgspec.msgpack.Decoder(Event)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failures = 0

    @property
    def active(self) -> int:
        return len(self.streams)

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"replica {self.name}")

    def submit(self, rid: int, prompt: ChatPrompt | TextPrompt, params: SamplingParams, stream: RequestStream) -> None:
        if self.state is not ReplicaState.READY:
            stream.fail(f"the worker for {self.name} is {self.state.value}")
            return
        self.streams[rid] = stream
        self.idle.clear()
        self._send(AddRequest(rid, prompt, params))

    def abort(self, rid: int) -> None:
        if self.streams.pop(rid, None) is not None and self.state is ReplicaState.READY:
            self._send(AbortRequest(rid))
        if not self.streams:
            self.idle.set()

    async def stop(self) -> None:
        self._stopping = True
        if self._writer is not None and self.state is ReplicaState.READY:
            self._send(Shutdown())
        if self._process is not None and self._process.returncode is None:
            try:
                await asyncio.wait_for(self._process.wait(), SHUTDOWN_GRACE_SECONDS)
            except asyncio.TimeoutError:
                self._process.kill()
                await self._process.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # No process any more: a stale PID in the status would point at nothing (or at someone else).
        self.pid = None
        self._set_state(ReplicaState.STOPPED)

    def _send(self, message: Any) -> None:
        assert self._writer is not None
        self._writer.write(frame(message, self._encoder))

    def _set_state(self, state: ReplicaState, error: str | None = None) -> None:
        self.state, self.error = state, error
        self.state_changed.set()
        self.state_changed = asyncio.Event()

    async def _supervise(self) -> None:
        while not self._stopping:
            try:
                await self._run_worker()
                return
            except WorkerExited as exc:
                if self._stopping:
                    return
                if self.restarts == 0 and self.pid is None:
                    # It never loaded: a bad model, device or property. Retrying would fail the same way.
                    log.error("replica %s failed to load: %s", self.name, exc)
                    self._set_state(ReplicaState.FAILED, str(exc))
                    return
                delay = RESTART_BACKOFF_SECONDS[min(self._failures, len(RESTART_BACKOFF_SECONDS) - 1)]
                self._failures += 1
                log.error("replica %s: %s; restarting in %.1fs", self.name, exc, delay)
                self._set_state(ReplicaState.RESTARTING, str(exc))
                await asyncio.sleep(delay)
                self.restarts += 1

    async def _run_worker(self) -> None:
        parent, child = socket.socketpair()
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                WORKER_MODULE,
                "--fd",
                str(child.fileno()),
                "--log-level",
                self.log_level,
                pass_fds=[child.fileno()],
            )
        finally:
            child.close()
        reader, self._writer = await asyncio.open_connection(sock=parent)
        try:
            self._send(self.spec)
            first = await self._read_event(reader)
            if isinstance(first, WorkerFailed):
                raise WorkerExited(first.error)
            assert isinstance(first, WorkerReady)
            self.pid, self.context_length, self.load_seconds = first.pid, first.context_length, first.load_seconds
            self.chat_template = first.chat_template
            self.tokenizer, self.generation_defaults = first.tokenizer, first.generation_defaults
            self.source_path = first.source_path
            log.info("replica %s ready (pid %d, loaded in %.1fs)", self.name, first.pid, first.load_seconds)
            self._set_state(ReplicaState.READY)
            # Back off only while restarts keep failing; a worker that came up starts the count again.
            self._failures = 0
            while True:
                event = await self._read_event(reader)
                if isinstance(event, StepReport):
                    await self._deliver(event)
        finally:
            self._writer.close()
            self.fail_streams(f"the worker for {self.name} stopped unexpectedly")
            if self._process.returncode is None and self._stopping:
                await self._process.wait()

    async def _read_event(self, reader: asyncio.StreamReader) -> Event:
        try:
            header = await reader.readexactly(FRAME_HEADER.size)
            body = await reader.readexactly(FRAME_HEADER.unpack(header)[0])
        except (asyncio.IncompleteReadError, ConnectionError):
            # No new request may be routed here while we wait for the exit code.
            if self.state is ReplicaState.READY:
                self.state = ReplicaState.RESTARTING
            code = await self._process_exit_code()
            raise WorkerExited(f"worker process exited (code {code})") from None
        return self._decoder.decode(body)

    async def _process_exit_code(self) -> int | None:
        assert self._process is not None
        try:
            return await asyncio.wait_for(self._process.wait(), 5.0)
        except asyncio.TimeoutError:
            self._process.kill()
            return await self._process.wait()

    async def _deliver(self, report: StepReport) -> None:
        self.stats = report.stats
        outputs = report.outputs
        for start in range(0, len(outputs), DELIVERY_SLICE):
            if start:
                # Let the streams woken so far write before waking more: one step of a large batch would otherwise
                # hold the loop for all its streams' writes at once, and everything else (a new request's
                # admission, a health probe) would wait behind them.
                await asyncio.sleep(0)
            for output in outputs[start : start + DELIVERY_SLICE]:
                stream = self.streams.get(output.rid)
                if stream is None:
                    continue  # aborted by the HTTP side; the worker learns it with its next command read
                stream.push(output)
                if stream.finished:
                    del self.streams[output.rid]
        if not self.streams:
            self.idle.set()

    def fail_streams(self, message: str) -> None:
        streams, self.streams = self.streams, {}
        self.idle.set()
        for stream in streams.values():
            stream.fail(message)
