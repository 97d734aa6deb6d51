"""Continuous batching, aborts on disconnect and worker restarts, proven by the worker's own counters."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from benchmarks.contention import process_cpu_seconds
from tests.server import Server, run_server, write_config

STORY: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Tell me a long story about a lighthouse keeper."}
]


@pytest.fixture(scope="module")
def fresh_server(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Its own daemon: these tests read counters that other tests' traffic would disturb.

    A second model, in its own worker, shows that one model's faults leave the other serving; it streams in
    batches of tokens (`stream_interval`).
    """
    tmp = tmp_path_factory.mktemp("engine")
    models: list[dict[str, Any]] = [
        {"id": "smollm2", "source": str(smollm2_gguf)},
        {"id": "second", "source": str(smollm2_gguf), "stream_interval": 4},
    ]
    config = write_config(tmp / "config.yaml", models)
    with run_server(config, tmp) as running:
        yield running


def replica(server: Server) -> dict[str, Any]:
    replicas: list[dict[str, Any]] = server.status()["smollm2"]["replicas"]
    return replicas[0]


def test_sixteen_concurrent_streams_share_engine_steps(fresh_server: Server) -> None:
    async def one(client: openai.AsyncOpenAI) -> tuple[str, str | None]:
        stream = await client.chat.completions.create(
            model="smollm2",
            messages=STORY,
            max_tokens=48,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        text, finish = "", None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
        return text, finish

    async def run() -> list[tuple[str, str | None]]:
        async with fresh_server.async_client() as client:
            return await asyncio.gather(*(one(client) for _ in range(16)))

    started = time.monotonic()
    results = asyncio.run(run())
    elapsed = time.monotonic() - started
    assert all(text and finish == "length" for text, finish in results)
    stats = replica(fresh_server)
    assert stats["max_batch"] >= 8, stats
    assert stats["generated_tokens"] >= 16 * 48
    # The 16 streams rode the same steps: far fewer steps than tokens, each token from a sequence a step carried.
    assert stats["step_sequences"] >= stats["generated_tokens"] >= 4 * stats["steps"], stats
    assert 0 < stats["step_seconds"] < elapsed, stats


def test_stream_interval_sends_the_same_text_in_fewer_chunks(fresh_server: Server) -> None:
    client = fresh_server.client()
    request: dict[str, Any] = {"messages": STORY, "max_tokens": 21, "temperature": 0}
    request["extra_body"] = {"ignore_eos": True}
    chunks = list(
        client.chat.completions.create(
            model="second", stream=True, stream_options={"include_usage": True}, logprobs=True, **request
        )
    )
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    # The first token at once, then 4 at a time: 1 + 4 * 5 = 21 tokens, in 6 chunks (fewer only if the server merged
    # some for a client that fell behind: still 4 tokens or a multiple of 4 after the first).
    sizes = [len(c.choices[0].logprobs.content or []) for c in chunks if c.choices and c.choices[0].logprobs]
    assert sizes[0] == 1 and all(size % 4 == 0 for size in sizes[1:]) and sum(sizes) == 21, sizes
    assert 2 <= len(content) == len(sizes) <= 6, content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 21
    whole = client.chat.completions.create(model="smollm2", **request).choices[0].message.content
    assert "".join(content) == whole


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads a worker's CPU time from /proc")
def test_a_stream_that_falls_behind_gets_the_tokens_merged_and_none_lost(fresh_server: Server) -> None:
    client = fresh_server.client()
    request: dict[str, Any] = {"messages": STORY, "max_tokens": 64, "temperature": 0}
    request["extra_body"] = {"ignore_eos": True}
    worker = replica(fresh_server)["pid"]
    stream = client.chat.completions.create(
        model="smollm2", stream=True, stream_options={"include_usage": True}, logprobs=True, **request
    )
    chunks = [next(stream)]
    while not (chunks[-1].choices and chunks[-1].choices[0].delta.content):
        chunks.append(next(stream))
    # Freeze the HTTP process, as a starved one would be, while the worker goes on: ~0.3 s of the worker's CPU is
    # a dozen or more steps (a one-sequence step costs it ~20 ms), each a report that now waits in the socket.
    os.kill(fresh_server.process.pid, signal.SIGSTOP)
    try:
        frozen_at = process_cpu_seconds(worker)
        deadline = time.monotonic() + 60
        while process_cpu_seconds(worker) - frozen_at < 0.3:
            assert time.monotonic() < deadline, "the worker made no progress"
            time.sleep(0.01)
    finally:
        os.kill(fresh_server.process.pid, signal.SIGCONT)
    chunks.extend(stream)
    sizes = [len(c.choices[0].logprobs.content or []) for c in chunks if c.choices and c.choices[0].logprobs]
    # The reports that waited reached the stream together and went out as one chunk of several tokens.
    assert max(sizes) > 1 and sum(sizes) == 64, sizes
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 64
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == client.chat.completions.create(model="smollm2", **request).choices[0].message.content


def test_disconnect_mid_stream_aborts_the_request(fresh_server: Server) -> None:
    body = {"model": "smollm2", "messages": STORY, "max_tokens": 4000, "stream": True, "ignore_eos": True}
    before = replica(fresh_server)["generated_tokens"]
    with fresh_server.http() as http, http.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = response.iter_lines()
        while '"content":""' in (line := next(lines)) or not line.startswith("data: "):
            pass  # read up to the first real token, then hang up
        assert replica(fresh_server)["active"] == 1
    # 4000 tokens take ~40 s to generate: an active count back at 0 well before that means the abort worked.
    fresh_server.wait_until(lambda: replica(fresh_server)["active"] == 0, timeout=10, what="the abort")
    assert replica(fresh_server)["generated_tokens"] - before < 1000
    fresh_server.wait_until(lambda: "finish=aborted" in fresh_server.log(), timeout=5, what="the request log line")


def test_disconnect_while_waiting_for_a_non_streaming_answer_aborts(fresh_server: Server) -> None:
    body = {"model": "smollm2", "messages": STORY, "max_tokens": 4000, "ignore_eos": True}
    before = replica(fresh_server)["generated_tokens"]
    with fresh_server.http() as http, pytest.raises(httpx.ReadTimeout):
        # The client gives up after one second without an answer and closes its connection.
        http.post("/v1/chat/completions", json=body, timeout=httpx.Timeout(30, read=1.0))
    fresh_server.wait_until(lambda: replica(fresh_server)["active"] == 0, timeout=10, what="the abort")
    assert replica(fresh_server)["generated_tokens"] - before < 1000


def test_killed_worker_fails_its_eight_streams_while_another_model_serves(fresh_server: Server) -> None:
    first = replica(fresh_server)
    client = fresh_server.client()
    streams = [
        client.chat.completions.create(
            model="smollm2", messages=STORY, max_tokens=4000, stream=True, extra_body={"ignore_eos": True}
        )
        for _ in range(8)
    ]
    chunk_iters = [iter(stream) for stream in streams]
    for chunks in chunk_iters:
        next(chunks)  # every stream is running
    fresh_server.wait_until(lambda: replica(fresh_server)["active"] == 8, what="all 8 streams to run")

    stop_second = threading.Event()
    # (start, end) of every request answered by the second model, and whatever failed there.
    answered: list[tuple[float, float]] = []
    failures: list[BaseException] = []

    def keep_using_second_model() -> None:
        while not stop_second.is_set():
            start = time.monotonic()
            try:
                done = client.chat.completions.create(model="second", messages=STORY, max_tokens=4)
                assert done.choices[0].message.content
            except BaseException as exc:
                failures.append(exc)
                return
            answered.append((start, time.monotonic()))

    with ThreadPoolExecutor(1) as pool:
        second = pool.submit(keep_using_second_model)
        fresh_server.wait_until(lambda: bool(answered), what="the second model to answer")
        killed_at = time.monotonic()
        os.kill(first["pid"], signal.SIGKILL)
        for chunks in chunk_iters:
            with pytest.raises(openai.APIError, match="stopped unexpectedly"):
                for _ in chunks:
                    pass
        with fresh_server.http() as http:
            fresh_server.wait_until(lambda: http.get("/ready").status_code == 503, what="/ready to report 503")
        wait_for_restart(fresh_server, first["restarts"] + 1)
        back_at = time.monotonic()
        stop_second.set()
        second.result(timeout=60)
    assert not failures, failures
    assert any(killed_at <= start and end <= back_at for start, end in answered), "second model served meanwhile"
    assert replica(fresh_server)["pid"] != first["pid"]
    with fresh_server.http() as http:
        assert http.get("/ready").status_code == 200
    completion = client.chat.completions.create(model="smollm2", messages=STORY, max_tokens=5)
    assert completion.choices[0].message.content


def test_killed_worker_fails_a_non_streaming_request_with_503(fresh_server: Server) -> None:
    first = replica(fresh_server)
    body = {"model": "smollm2", "messages": STORY, "max_tokens": 4000, "ignore_eos": True}

    def post() -> httpx.Response:
        with fresh_server.http() as http:
            return http.post("/v1/chat/completions", json=body)

    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(post)
        fresh_server.wait_until(lambda: replica(fresh_server)["active"] == 1, what="the request to start")
        os.kill(first["pid"], signal.SIGKILL)
        response = answer.result(timeout=60)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "engine_error"
    wait_for_restart(fresh_server, first["restarts"] + 1)


def wait_for_restart(server: Server, restarts: int) -> None:
    server.wait_until(
        lambda: replica(server)["state"] == "ready" and replica(server)["restarts"] == restarts,
        timeout=60,
        what="the worker restart",
    )


def test_two_cpu_replicas_share_concurrent_requests(smollm2_gguf: Path, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.yaml", [{"id": "smollm2", "source": str(smollm2_gguf), "devices": ["CPU", "CPU"]}]
    )
    with run_server(config, tmp_path) as server:

        async def run() -> None:
            async with server.async_client() as client:
                await asyncio.gather(
                    *(
                        client.chat.completions.create(
                            model="smollm2",
                            messages=STORY,
                            max_tokens=32,
                            extra_body={"ignore_eos": True},
                        )
                        for _ in range(8)
                    )
                )

        asyncio.run(run())
        replicas = server.status()["smollm2"]["replicas"]
        assert [r["name"] for r in replicas] == ["smollm2/CPU#0", "smollm2/CPU#1"]
        assert len({r["pid"] for r in replicas}) == 2
        # 8 requests of 32 tokens, split by fewest-active with round-robin ties: 4 each.
        assert [r["generated_tokens"] for r in replicas] == [4 * 32, 4 * 32], replicas
