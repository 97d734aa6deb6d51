"""The daemon as an operator sees it: API keys, SIGTERM draining, the IR path, config errors at start."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.server import Server, free_port, run_server, stop, write_config

STRICT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}{{ raise_exception('the first message must be a system message') }}"
    "{% endif %}{{ messages[0]['content'] }}"
)
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What is the capital of France?"}]


def test_api_keys_from_config_and_environment(smollm2_gguf: Path, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.yaml",
        [{"id": "smollm2", "source": str(smollm2_gguf)}],
        {"api_keys": ["sk-config-key-123"]},
    )
    with run_server(config, tmp_path, env={"OPENARC_API_KEY": "sk-env-key-456"}, api_key="sk-config-key-123") as server:
        for key in ("sk-config-key-123", "sk-env-key-456"):
            server.api_key = key
            assert server.client().models.list().data[0].id == "smollm2"
        for headers in ({}, {"Authorization": "Bearer sk-wrong-key-789"}, {"Authorization": "Basic sk-config-key-123"}):
            response = httpx.post(f"{server.url}/v1/chat/completions", json={}, headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["type"] == "authentication_error"
            assert response.json()["error"]["code"] == "invalid_api_key"
        server.api_key = "sk-wrong-key-789"
        with pytest.raises(openai.AuthenticationError):
            server.client().models.list()
        assert httpx.get(f"{server.url}/health").status_code == 200
        assert httpx.get(f"{server.url}/ready").status_code == 200
        assert httpx.get(f"{server.url}/metrics").status_code == 200, "open unless metrics_require_key"
        log = server.log()
    for secret in ("sk-config-key-123", "sk-env-key-456", "sk-wrong-key-789"):
        assert secret not in log


def test_sigterm_drains_in_flight_streams_then_exits_zero(smollm2_gguf: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", [{"id": "smollm2", "source": str(smollm2_gguf)}])
    with run_server(config, tmp_path) as server:
        stream = server.client().chat.completions.create(
            model="smollm2",
            messages=MESSAGES,
            max_tokens=150,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        chunks = iter(stream)
        next(chunks)
        server.process.send_signal(signal.SIGTERM)
        rest = list(chunks)
        finish = [c.choices[0].finish_reason for c in rest if c.choices and c.choices[0].finish_reason]
        assert finish == ["length"], "the in-flight stream runs to its end"
        assert stop(server) == 0
        log = server.log()
    assert "SIGTERM received: draining" in log
    assert "completion_tokens=150" in log


def test_ir_folder_exported_from_gguf_is_served(smollm2_ir: Path, tmp_path: Path) -> None:
    assert (smollm2_ir / "openvino_model.xml").is_file()
    config = write_config(tmp_path / "config.yaml", [{"id": "smollm2", "source": str(smollm2_ir)}])
    with run_server(config, tmp_path) as server:
        completion = server.client().chat.completions.create(
            model="smollm2", messages=MESSAGES, max_tokens=20, temperature=0
        )
        assert "Paris" in (completion.choices[0].message.content or "")
        assert server.status()["smollm2"]["context_length"] == 8192


def test_serve_with_invalid_config_exits_2_without_traceback(tmp_path: Path) -> None:
    config = write_config(tmp_path / "bad.yaml", [{"id": "m", "source": "missing.gguf", "devices": ["NPU.7"]}])
    result = subprocess.run(
        [sys.executable, "-m", "openarc", "serve", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{config}: $.models[0].source: no such file or folder" in result.stderr
    assert f"{config}: $.models[0].devices[0]: device 'NPU.7' is not available" in result.stderr


def test_model_that_fails_to_load_is_reported_while_the_rest_serve(smollm2_gguf: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    config = write_config(
        tmp_path / "config.yaml",
        [
            {"id": "broken", "source": str(broken)},
            {"id": "smollm2", "source": str(smollm2_gguf)},
            {"id": "strict", "source": str(smollm2_gguf), "chat_template": STRICT_TEMPLATE},
        ],
    )
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "openarc", "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as process:
        server = Server(process, port, tmp_path / "unused.log")
        try:
            server.wait_until(
                lambda: _statuses(server) == {"broken": "failed", "smollm2": "ready", "strict": "ready"},
                60,
                "the models to settle",
            )
            failed = server.status()["broken"]["replicas"][0]
            assert failed["error"], "the load error is shown"
            with server.http() as http:
                assert http.get("/ready").status_code == 503
                response = http.post("/v1/chat/completions", json={"model": "broken", "messages": MESSAGES})
                assert response.status_code == 503
                assert response.json()["error"]["code"] == "model_unavailable"
            completion = server.client().chat.completions.create(model="smollm2", messages=MESSAGES, max_tokens=5)
            assert completion.choices[0].message.content
            # A template that refuses the messages is the client's error, with the template's own words.
            with pytest.raises(openai.BadRequestError) as caught:
                server.client().chat.completions.create(model="strict", messages=MESSAGES)
            assert caught.value.message.endswith(
                "the chat template rejected the messages: the first message must be a system message"
            )
            assert server.status()["strict"]["replicas"][0]["restarts"] == 0
        finally:
            assert stop(server) == 0


def _statuses(server: Server) -> dict[str, str]:
    try:
        return {model_id: model["status"] for model_id, model in server.status().items()}
    except httpx.TransportError:
        return {}


def test_body_size_queue_and_max_tokens_limits(smollm2_gguf: Path, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.yaml",
        [
            {"id": "smollm2", "source": str(smollm2_gguf), "scheduler": {"max_num_seqs": 2}, "max_waiting": 0},
            {"id": "capped", "source": str(smollm2_gguf), "max_tokens_limit": 40},
        ],
        {"max_request_bytes": 60_000},
    )
    with run_server(config, tmp_path) as server, server.http() as http:
        big = {"model": "smollm2", "messages": [{"role": "user", "content": "x" * 70_000}]}
        response = http.post("/v1/chat/completions", json=big)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"

        def chunked() -> Iterator[bytes]:
            yield b'{"model": "smollm2", "messages": [{"role": "user", "content": "'
            yield b"x" * 70_000
            yield b'"}]}'

        response = http.post("/v1/chat/completions", content=chunked(), headers={"content-type": "application/json"})
        assert response.status_code == 413, "a body without Content-Length is counted as it arrives"

        capped = http.post("/v1/chat/completions", json={"model": "capped", "messages": MESSAGES, "max_tokens": 41})
        assert capped.status_code == 400 and capped.json()["error"]["param"] == "max_tokens"
        unset = {"model": "capped", "messages": MESSAGES, "ignore_eos": True}
        assert http.post("/v1/chat/completions", json=unset).json()["usage"]["completion_tokens"] == 40
        # ~8,170 prompt tokens leave less room than the limit: the limit was not the client's to meet, so the
        # completion gets the room left (as in vLLM), not a 400 for asking beyond the context.
        near_full = {"model": "capped", "messages": [{"role": "user", "content": "hello " * 8140}], "ignore_eos": True}
        answer = http.post("/v1/chat/completions", json=near_full)
        assert answer.status_code == 200, answer.text
        usage = answer.json()["usage"]
        assert 0 < usage["completion_tokens"] < 40
        assert usage["prompt_tokens"] + usage["completion_tokens"] == 8192
        assert answer.json()["choices"][0]["finish_reason"] == "length"

        # Streams long enough (4000 tokens, ~40 s) to hold both slots while the third request arrives.
        long = {"model": "smollm2", "messages": MESSAGES, "max_tokens": 4000, "ignore_eos": True, "stream": True}
        with (
            http.stream("POST", "/v1/chat/completions", json=long) as first,
            http.stream("POST", "/v1/chat/completions", json=long) as second,
        ):
            assert first.status_code == second.status_code == 200
            refused = http.post("/v1/chat/completions", json={"model": "smollm2", "messages": MESSAGES})
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["type"] == "rate_limit_error"
        # Both streams were abandoned above: their slots come back and requests are served again.
        server.wait_until(lambda: server.status()["smollm2"]["replicas"][0]["active"] == 0, what="the aborts")
        completion = server.client().chat.completions.create(model="smollm2", messages=MESSAGES, max_tokens=3)
        assert completion.choices[0].message.content
