"""Load generator: keep C streaming chat requests in flight against any OpenAI-compatible server, N in all.

Every SSE chunk is decoded into the chat.completion.chunk shape (msgspec, so a wrong type is caught) and
checked: one id and `created` per stream, `role` in the first delta, `finish_reason` last, `[DONE]` at the
end. A lean HTTP/1.1 client (benchmarks/http_client.py) is used instead of an SDK: on a 2-core machine the
load generator's own CPU is taken from the server it measures.

    python benchmarks/serving_bench.py --url http://127.0.0.1:8000 --model smollm2 -c 1 4 16 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import msgspec

from benchmarks.common import Result, level_requests, prompt_messages
from benchmarks.http_client import Connection
from openarc import event_loop


class Delta(msgspec.Struct):
    role: str | None = None
    content: str | None = None


class Choice(msgspec.Struct):
    index: int
    delta: Delta
    finish_reason: str | None = None


class Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Chunk(msgspec.Struct):
    id: str
    object: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None


_chunk_decoder = msgspec.json.Decoder(Chunk)


class Malformed(Exception):
    pass


class StreamCheck:
    """The per-stream rules every chunk must follow."""

    def __init__(self) -> None:
        self.id: str | None = None
        self.created: int | None = None
        self.role_seen = False
        self.finished = False
        self.done = False
        self.usage: Usage | None = None
        self.content_chunks = 0
        self.created_changed = False

    def feed(self, payload: bytes) -> bool:
        """Check one `data:` payload; True when it carried content."""
        if payload == b"[DONE]":
            if not self.finished or self.done:
                raise Malformed("[DONE] before finish_reason, or twice")
            self.done = True
            return False
        if self.done:
            raise Malformed("data after [DONE]")
        try:
            chunk = _chunk_decoder.decode(payload)
        except msgspec.ValidationError as exc:
            raise Malformed(f"{exc}: {payload[:200]!r}") from None
        if chunk.object != "chat.completion.chunk":
            raise Malformed(f"object is {chunk.object!r}")
        if self.id is None:
            self.id, self.created = chunk.id, chunk.created
        elif chunk.id != self.id:
            raise Malformed("the id changed within a stream")
        elif chunk.created != self.created:
            # OpenAI: every chunk has the same timestamp. Some servers (llama.cpp's) stamp each chunk with the
            # time it was sent; the text still arrives whole, so this is counted as a deviation, not an error.
            self.created_changed = True
            self.created = chunk.created
        if chunk.usage is not None:
            self.usage = chunk.usage
        has_content = False
        for choice in chunk.choices:
            if self.finished:
                raise Malformed("a chunk after finish_reason")
            if not self.role_seen:
                if choice.delta.role != "assistant":
                    raise Malformed("the first delta has no role")
                self.role_seen = True
            if choice.delta.content:
                has_content = True
            if choice.finish_reason is not None:
                self.finished = True
        if has_content:
            self.content_chunks += 1
        return has_content


def connect(url: str, headers: dict[str, str]) -> Connection:
    return Connection(url, "/v1/chat/completions", headers)


class StreamRecorder:
    """One request's response: checks every SSE frame as it arrives and times the content frames."""

    def __init__(self, result: Result) -> None:
        self.result = result
        self.started = time.perf_counter()
        self.status = 0
        self.check = StreamCheck()
        self._pending = b""
        self._last: float | None = None

    def head(self, status: int, headers: dict[str, str]) -> None:
        self.status = status

    def body(self, data: bytes) -> None:
        if self.status != 200:
            return
        *frames, self._pending = (self._pending + data).split(b"\n\n")
        for frame in frames:
            if not frame.startswith(b"data: "):
                raise Malformed(f"not an SSE data frame: {frame[:80]!r}")
            if self.check.feed(frame[6:]):
                now = time.perf_counter()
                if self._last is None:
                    self.result.ttft_ms.append((now - self.started) * 1000)
                else:
                    self.result.itl_ms.append((now - self._last) * 1000)
                self._last = now

    def end(self) -> None:
        if not self.check.done or self._pending.strip():
            raise Malformed("the stream ended without [DONE]")
        result, check = self.result, self.check
        result.e2e_ms.append((time.perf_counter() - self.started) * 1000)
        result.created_changed += check.created_changed
        result.output_tokens += check.usage.completion_tokens if check.usage else check.content_chunks


async def one_stream(connection: Connection, body: bytes, result: Result) -> None:
    recorder = StreamRecorder(result)
    try:
        await connection.post(body, recorder)
        if recorder.status != 200:
            result.errors += 1
            return
        recorder.end()
    except Malformed:
        result.malformed_chunks += 1
        result.errors += 1
        connection.close()
    except (OSError, ValueError):
        result.errors += 1
        connection.close()


async def run(
    url: str,
    model: str,
    concurrency: int,
    total: int,
    max_tokens: int,
    api_key: str | None = None,
    target: str = "server",
    first: int = 0,
) -> Result:
    """`first`: the number of the first prompt; runs that must not find each other's prompts in the prefix
    cache use different ranges."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    result = Result(target, concurrency, total, 0, 0.0)
    bodies = [
        json.dumps(
            {
                "model": model,
                "messages": prompt_messages(i),
                "max_tokens": max_tokens,
                "temperature": 0,
                "ignore_eos": True,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ).encode()
        for i in range(first, first + total)
    ]
    queue = iter(bodies)

    async def worker() -> None:
        connection = connect(url, headers)
        try:
            for body in queue:
                await one_stream(connection, body, result)
        finally:
            connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--api-key")
    parser.add_argument("-c", "--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--requests-per-slot", type=int, default=4, help="at least this many a slot")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    for concurrency in args.concurrency:
        total = level_requests(concurrency, args.requests_per_slot)
        result = event_loop.run(
            run(args.url, args.model, concurrency, total, args.max_tokens, args.api_key), event_loop.resolve("auto")
        )
        print(json.dumps(result.summary()))


if __name__ == "__main__":
    main()
