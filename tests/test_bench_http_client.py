"""The load generator's HTTP client against a scripted server: framing split anywhere, keep-alive, closes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from benchmarks.common import Result
from benchmarks.serving_bench import connect, one_stream
from openarc import event_loop


def sse_chunk(**delta: str | None) -> bytes:
    finish = delta.pop("finish", None)
    payload = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


STREAM = (
    sse_chunk(role="assistant", content="")
    + sse_chunk(content="Hel")
    + sse_chunk(content="lo")
    + sse_chunk(finish="stop")
    + b"data: [DONE]\n\n"
)


def chunked(body: bytes, pieces: int = 3) -> bytes:
    size = -(-len(body) // pieces)
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x;ext=1\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


OK_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
# A piece that closes the connection there.
CLOSE = b""
Script = Callable[[int], list[bytes] | None]


@asynccontextmanager
async def scripted_server(script: Script) -> AsyncIterator[tuple[str, list[int]]]:
    """Answers the n-th request (counted over all connections) with `script(n)`: the pieces to write, one
    write each (CLOSE closes the connection), or None to close it without answering."""
    requests: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.lower().split(b"\r\n")
                length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
                await reader.readexactly(length)
                requests.append(len(requests))
                pieces = script(len(requests) - 1)
                if pieces is None:
                    break
                for piece in pieces:
                    if piece == CLOSE:
                        return
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", requests


def run(script: Script, requests: int) -> tuple[Result, int]:
    async def go() -> tuple[Result, int]:
        result = Result("t", 1, requests, 0, 0.0)
        async with scripted_server(script) as (url, served):
            connection = connect(url, {})
            for _ in range(requests):
                await one_stream(connection, b"{}", result)
            connection.close()
            return result, len(served)

    # On the event loop the benchmarks use (uvloop where installed): its transports differ from asyncio's.
    return event_loop.run(go(), event_loop.resolve("auto"))


def test_a_stream_split_at_every_byte_is_read_whole() -> None:
    response = OK_HEAD + chunked(STREAM)
    result, served = run(lambda n: [response[i : i + 1] for i in range(len(response))], 2)
    assert (result.errors, result.malformed_chunks, served) == (0, 0, 2)
    # Two content chunks per stream; one connection served both.
    assert result.output_tokens == 4 and len(result.ttft_ms) == 2 and len(result.itl_ms) == 2


def test_an_error_status_with_a_length_counts_as_an_error_and_keeps_the_connection() -> None:
    refusal = b'{"error": {"message": "no"}}'
    error = b"HTTP/1.1 400 Bad Request\r\ncontent-length: %d\r\n\r\n%s" % (len(refusal), refusal)
    result, served = run(lambda n: [error] if n == 0 else [OK_HEAD + chunked(STREAM)], 2)
    assert (result.errors, result.output_tokens, served) == (1, 2, 2)


def test_a_keep_alive_connection_closed_before_answering_is_retried_once() -> None:
    # The server answers the first request, then closes the connection on the second without answering: the
    # client sends that request again on a new connection, where it is answered.
    result, served = run(lambda n: None if n == 1 else [OK_HEAD + chunked(STREAM)], 2)
    assert (result.errors, result.output_tokens, served) == (0, 4, 3)


def test_a_connection_closed_mid_response_is_an_error_and_not_retried() -> None:
    result, served = run(lambda n: [OK_HEAD + chunked(STREAM)[:40], CLOSE], 1)
    assert (result.errors, served) == (1, 1)


@pytest.mark.parametrize(
    "body",
    [STREAM.replace(b"data: [DONE]\n\n", b""), STREAM.replace(b"data: [DONE]", b"event: nonsense")],
    ids=["no [DONE]", "not a data frame"],
)
def test_a_stream_without_done_or_with_a_bad_frame_is_malformed(body: bytes) -> None:
    result, _ = run(lambda n: [OK_HEAD + chunked(body)], 1)
    assert (result.errors, result.malformed_chunks) == (1, 1)


def test_a_response_that_is_not_http_is_an_error() -> None:
    result, _ = run(lambda n: [b"SSH-2.0-OpenSSH\r\n\r\n"], 1)
    assert (result.errors, result.malformed_chunks) == (1, 0)
