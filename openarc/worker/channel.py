"""The worker's end of the socket: blocking framed reads when idle, non-blocking ones between steps."""

from __future__ import annotations

import select
import socket

import msgspec

from openarc.ipc import FRAME_HEADER, Command, Event, LoadModel, frame


class EngineGone(Exception):
    """The HTTP process closed its end: the worker has no one to serve."""


class CommandChannel:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self._encoder = msgspec.msgpack.Encoder()
        self._command_decoder = msgspec.msgpack.Decoder(Command)

    def send(self, event: Event) -> None:
        self._sock.sendall(frame(event, self._encoder))

    def receive_load(self) -> LoadModel:
        while True:
            body = self._next_frame()
            if body is not None:
                return msgspec.msgpack.decode(body, type=LoadModel)
            self._fill(None)

    def receive(self, block: bool) -> list[Command]:
        """Every command that has arrived; with `block`, wait for at least one (the idle worker sleeps here)."""
        self._fill(None if block else 0)
        commands = self._decode_all()
        if block and not commands:
            return self.receive(block=True)
        return commands

    def receive_within(self, seconds: float) -> list[Command]:
        """The commands that arrive within `seconds` (at least one frame's worth of bytes, or none)."""
        self._fill(seconds)
        return self._decode_all()

    def _decode_all(self) -> list[Command]:
        commands = []
        while (body := self._next_frame()) is not None:
            commands.append(self._command_decoder.decode(body))
        return commands

    def _fill(self, timeout: float | None) -> None:
        ready, _, _ = select.select([self._sock], [], [], timeout)
        while ready:
            chunk = self._sock.recv(1 << 16)
            if not chunk:
                raise EngineGone
            self._buffer += chunk
            ready, _, _ = select.select([self._sock], [], [], 0)

    def _next_frame(self) -> bytes | None:
        if len(self._buffer) < FRAME_HEADER.size:
            return None
        (length,) = FRAME_HEADER.unpack_from(self._buffer)
        end = FRAME_HEADER.size + length
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[FRAME_HEADER.size : end])
        del self._buffer[:end]
        return body
