"""A lean HTTP/1.1 client for streamed responses, built on `asyncio.Protocol`.

The load generator shares the server's two cores, so its CPU per token is taken from the server it measures.
With asyncio streams, every SSE chunk cost three awaited reads (size line, data, CRLF): ~65 µs of the load
generator's CPU per token. Here the response is parsed in `data_received` as the bytes arrive, with no
coroutine or future per chunk (~50 µs per token, about half of it the kernel's wake-up and read); one future
per request tells the caller it has ended.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, cast
from urllib.parse import urlsplit


class ResponseHandler(Protocol):
    def head(self, status: int, headers: dict[str, str]) -> None:
        """The status line and headers (names lower-cased) arrived."""

    def body(self, data: bytes) -> None:
        """More of the (de-chunked) body arrived; an exception raised here ends the request with it."""


class ProtocolError(ValueError):
    pass


_HEAD, _CHUNK_SIZE, _CHUNK_DATA, _TRAILERS, _LENGTH, _UNTIL_CLOSE, _DONE = range(7)


class _ResponseReader(asyncio.Protocol):
    """One connection: parses each response as it arrives and hands it to that request's handler."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost = False
        # Whether any byte of the current response arrived: a reused connection the server closed before
        # answering may be retried, one that closed mid-response may not.
        self.answered = False
        self.close_after = False
        self._buffer = bytearray()
        self._handler: ResponseHandler | None = None
        self._done: asyncio.Future[None] | None = None
        self._state = _DONE
        self._left = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport has Transport's methods without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._done is None or self._done.done():
            return
        if self._state == _UNTIL_CLOSE:
            self._finish()
        else:
            self._done.set_exception(ConnectionResetError("the server closed the connection mid-response"))

    def expect(self, handler: ResponseHandler) -> asyncio.Future[None]:
        self._handler, self._state, self.answered = handler, _HEAD, False
        self._buffer.clear()
        self._done = asyncio.get_running_loop().create_future()
        return self._done

    def data_received(self, data: bytes) -> None:
        if self._done is None or self._done.done():
            # Bytes nobody asked for: the connection is out of step, do not reuse it.
            self.close_after = True
            return
        self.answered = True
        self._buffer += data
        try:
            self._parse()
        except Exception as exc:
            self.close_after = True
            self._done.set_exception(exc)

    def _finish(self) -> None:
        assert self._done is not None
        self._state = _DONE
        if not self._done.done():
            self._done.set_result(None)

    def _line(self) -> bytes | None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def _parse(self) -> None:
        assert self._handler is not None
        buffer = self._buffer
        while buffer and self._state != _DONE:
            if self._state == _HEAD:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                self._head(bytes(buffer[:end]).decode("latin-1"))
                del buffer[: end + 4]
            elif self._state == _CHUNK_SIZE:
                line = self._line()
                if line is None:
                    return
                self._left = int(line.split(b";")[0], 16)
                self._state = _CHUNK_DATA if self._left else _TRAILERS
            elif self._state == _CHUNK_DATA:
                if len(buffer) < self._left + 2:
                    return
                data = bytes(buffer[: self._left])
                del buffer[: self._left + 2]
                self._state = _CHUNK_SIZE
                self._handler.body(data)
            elif self._state == _TRAILERS:
                line = self._line()
                if line is None:
                    return
                if not line:
                    self._finish()
            elif self._state == _LENGTH:
                data = bytes(buffer[: self._left])
                del buffer[: self._left]
                self._left -= len(data)
                self._handler.body(data)
                if not self._left:
                    self._finish()
            else:  # _UNTIL_CLOSE
                data = bytes(buffer)
                buffer.clear()
                self._handler.body(data)

    def _head(self, text: str) -> None:
        assert self._handler is not None
        status_line, *lines = text.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.close_after = headers.get("connection", "").lower() == "close"
        self._handler.head(int(parts[1]), headers)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            self._state = _CHUNK_SIZE
        elif "content-length" in headers:
            self._left = int(headers["content-length"])
            self._state = _LENGTH if self._left else _DONE
            if not self._left:
                self._finish()
        else:
            self._state = _UNTIL_CLOSE


class Connection:
    """One keep-alive connection for POSTs to one path, reopened when the server closes it."""

    def __init__(self, url: str, path: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        target = parts.path.rstrip("/") + path
        self._head = f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        self._reader: _ResponseReader | None = None

    async def post(self, body: bytes, handler: ResponseHandler) -> None:
        """Send one JSON POST and feed its response to `handler` until the response has ended."""
        reused = self._reader is not None and not self._reader.lost
        reader = await self._open()
        try:
            await self._exchange(reader, body, handler)
        except ConnectionResetError:
            if not reused or reader.answered:
                raise
            # The server closed the idle keep-alive connection before reading this request (llama.cpp's server
            # does, without saying "Connection: close"): send it again on a new one, as HTTP clients do.
            await self._exchange(await self._open(), body, handler)

    async def _open(self) -> _ResponseReader:
        if self._reader is None or self._reader.lost or self._reader.close_after:
            self.close()
            _, self._reader = await asyncio.get_running_loop().create_connection(_ResponseReader, self.host, self.port)
        return self._reader

    async def _exchange(self, reader: _ResponseReader, body: bytes, handler: ResponseHandler) -> None:
        assert reader.transport is not None
        ended = reader.expect(handler)
        head = self._head + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        reader.transport.write(head.encode() + body)
        try:
            await ended
        finally:
            if reader.close_after or reader.lost or not ended.done():
                self.close()

    def close(self) -> None:
        if self._reader is not None and self._reader.transport is not None:
            self._reader.transport.close()
        self._reader = None
