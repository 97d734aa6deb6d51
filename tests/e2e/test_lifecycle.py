"""Models loaded and unloaded at runtime, idle unload, config reload, devices and model info: real workers."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server import Server, run_server, write_config

STORY: Any = [{"role": "user", "content": "Tell me a long story about a dragon."}]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) still answers kill(0): read its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pids(server: Server) -> dict[str, int]:
    return {model_id: m["replicas"][0]["pid"] for model_id, m in server.status().items() if m["replicas"][0]["pid"]}


@pytest.fixture()
def daemon(smollm2_gguf: Path, tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    config = write_config(
        tmp_path / "config.yaml",
        [
            {"id": "first", "source": str(smollm2_gguf)},
            {"id": "idle", "source": str(smollm2_gguf), "keep_alive": "2s"},
        ],
    )
    with run_server(config, tmp_path) as server:
        yield server, config


def test_load_while_streaming_then_unload_returns_the_memory(daemon: tuple[Server, Path], smollm2_gguf: Path) -> None:
    server, _ = daemon

    async def streams_while_loading() -> list[str]:
        async with server.async_client() as client:
            started = [asyncio.Event() for _ in range(8)]

            async def one(first_chunk: asyncio.Event) -> str:
                stream = await client.chat.completions.create(
                    model="first", messages=STORY, max_tokens=96, stream=True, extra_body={"ignore_eos": True}
                )
                text = ""
                async for chunk in stream:
                    first_chunk.set()
                    if chunk.choices:
                        text += chunk.choices[0].delta.content or ""
                return text

            running = [asyncio.ensure_future(one(event)) for event in started]
            # Load only once every stream is under way.
            await asyncio.gather(*(event.wait() for event in started))
            with server.http() as http:
                response = http.post("/openarc/models", json={"id": "second", "source": str(smollm2_gguf)})
            assert response.status_code == 202, response.text
            assert response.json()["status"] == "loading"
            return await asyncio.gather(*running)

    texts = asyncio.run(streams_while_loading())
    assert all(texts)
    server.wait_until(lambda: server.status()["second"]["status"] == "ready", 120, "the second model to load")
    answer = server.client().chat.completions.create(model="second", messages=STORY, max_tokens=4)
    assert answer.choices[0].message.content
    second_pid = server.status()["second"]["replicas"][0]["pid"]
    with_second = daemon_rss_kb(server)
    second_rss = rss_kb(second_pid)
    assert second_rss > 50_000

    with server.http() as http:
        assert http.post("/openarc/models", json={"id": "second", "source": str(smollm2_gguf)}).status_code == 409
        response = http.delete("/openarc/models/second", params={"drain": "true"})
        assert response.status_code == 200, response.text
        assert response.json() == {"id": "second", "status": "unloaded"}
        assert http.delete("/openarc/models/second").status_code == 404
        assert http.get("/v1/models/second").status_code == 404
    assert not alive(second_pid)
    assert "second" not in server.status()
    # The daemon's memory (HTTP process and workers) fell by about the second worker's.
    assert daemon_rss_kb(server) < with_second - second_rss // 2


def daemon_rss_kb(server: Server) -> int:
    with server.http() as http:
        http_pid = http.get("/openarc/runtime").json()["pid"]
    return rss_kb(http_pid) + sum(rss_kb(pid) for pid in pids(server).values())


def test_bad_loads_are_400s_with_the_key_path_and_engine_failures_are_statuses(
    daemon: tuple[Server, Path], tmp_path: Path
) -> None:
    server, _ = daemon
    model = server.status()["first"]["source"]
    bad: list[tuple[dict[str, Any], str | None, str]] = [
        ({"id": "x", "source": str(tmp_path / "missing.gguf")}, "source", "no such file"),
        ({"id": "x", "source": str(tmp_path)}, "source", "holds no openvino_model.xml"),
        ({"id": "x", "source": model, "devices": ["GPU.7"]}, "devices[0]", "'GPU.7' is not available on this machine"),
        ({"id": "x", "source": model, "sheduler": {}}, None, "unknown field `sheduler`"),
        ({"id": "x", "source": model, "scheduler": {"max_num_seqs": 0}}, "scheduler.max_num_seqs", ">= 1"),
        ({"source": model}, None, "missing required field `id`"),
        ({"id": "x", "source": model, "keep_alive": "soon"}, "keep_alive", "expected a duration"),
    ]
    with server.http() as http:
        for spec, param, fragment in bad:
            response = http.post("/openarc/models", json=spec)
            assert response.status_code == 400, (spec, response.text)
            error = response.json()["error"]
            assert (error["param"], error["type"]) == (param, "invalid_request_error"), (spec, error)
            assert fragment in error["message"], (spec, error)

        broken = tmp_path / "broken.gguf"
        broken.write_bytes(b"GGUF" + b"\x00" * 64)
        assert http.post("/openarc/models", json={"id": "broken", "source": str(broken)}).status_code == 202
    server.wait_until(lambda: server.status()["broken"]["status"] == "failed", 60, "the broken model to fail")
    assert server.status()["broken"]["replicas"][0]["error"]
    assert (
        server.client().chat.completions.create(model="first", messages=STORY, max_tokens=3).choices[0].message.content
    )


def test_keep_alive_unloads_when_idle_and_the_next_request_reloads(daemon: tuple[Server, Path]) -> None:
    server, _ = daemon
    client = server.client()
    assert client.chat.completions.create(model="idle", messages=STORY, max_tokens=3).choices[0].message.content
    pid = server.status()["idle"]["replicas"][0]["pid"]
    server.wait_until(lambda: server.status()["idle"]["status"] == "unloaded", 30, "idle unload")
    server.wait_until(lambda: not alive(pid), 15, "the idle worker to exit")
    with server.http() as http:
        # An idle-unloaded model does not make the daemon unready.
        assert http.get("/ready").status_code == 200
    again = client.chat.completions.create(model="idle", messages=STORY, max_tokens=3)
    assert again.choices[0].message.content
    status = server.status()["idle"]
    assert status["status"] == "ready" and status["replicas"][0]["pid"] != pid


def test_config_reload_applies_only_the_difference(daemon: tuple[Server, Path], smollm2_gguf: Path) -> None:
    server, config = daemon
    first_pid = server.status()["first"]["replicas"][0]["pid"]
    idle_pid = server.status()["idle"]["replicas"][0]["pid"]
    config.write_text("models: [oops")
    with server.http() as http:
        refused = http.post("/openarc/config/reload")
        assert refused.status_code == 400 and "nothing changed" in refused.json()["error"]["message"]
    assert set(server.status()) == {"first", "idle"}

    write_config(config, [{"id": "first", "source": str(smollm2_gguf)}, {"id": "third", "source": str(smollm2_gguf)}])
    with server.http() as http:
        report = http.post("/openarc/config/reload").json()
    assert report == {"added": ["third"], "removed": ["idle"], "changed": [], "unchanged": ["first"]}
    server.wait_until(lambda: server.status()["third"]["status"] == "ready", 120, "the added model")
    assert server.status()["first"]["replicas"][0]["pid"] == first_pid
    # (It may have been unloaded for idling already: keep_alive is 2 s.)
    assert "idle" not in server.status() and (idle_pid is None or not alive(idle_pid))

    # SIGHUP does the same; a changed entry is replaced.
    third_pid = server.status()["third"]["replicas"][0]["pid"]
    write_config(
        config,
        [{"id": "first", "source": str(smollm2_gguf)}, {"id": "third", "source": str(smollm2_gguf), "max_waiting": 8}],
    )
    server.process.send_signal(signal.SIGHUP)
    server.wait_until(
        lambda: (m := server.status().get("third")) is not None and m["replicas"][0]["pid"] not in (None, third_pid),
        120,
        "the changed model to be replaced",
    )
    assert server.status()["first"]["replicas"][0]["pid"] == first_pid
    assert "config" in server.log() and "reloaded" in server.log()


def test_devices_and_model_info(daemon: tuple[Server, Path]) -> None:
    server, _ = daemon
    with server.http() as http:
        devices = http.get("/openarc/devices").json()["data"]
        assert [d["name"] for d in devices] == ["CPU"]
        assert devices[0]["full_device_name"] and "FP32" in devices[0]["optimization_capabilities"]
        cpu = http.get("/openarc/devices/CPU").json()
        assert cpu["properties"]["FULL_DEVICE_NAME"] == devices[0]["full_device_name"]
        assert isinstance(cpu["properties"]["INFERENCE_PRECISION_HINT"], str)
        assert http.get("/openarc/devices/GPU.3").status_code == 404

        info = http.get("/openarc/models/first/info").json()
        assert info["architecture"]["format"] == "gguf"
        assert info["architecture"]["metadata"]["general.architecture"] == "llama"
        assert info["architecture"]["metadata"]["llama.context_length"] == 8192
        assert info["context_length"] == 8192
        assert info["tokenizer"]["vocab_size"] == 49152
        assert info["tokenizer"]["eos_token"] == "<|im_end|>"
        assert "<|im_start|>" in info["tokenizer"]["chat_template"]
        assert http.get("/openarc/models/nope/info").status_code == 404
