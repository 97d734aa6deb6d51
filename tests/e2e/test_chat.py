"""Chat and text completions against the real SmolLM2 through a real server, with the official `openai` client."""

from __future__ import annotations

import json
from typing import Any

import httpx
from openai.types.chat import ChatCompletionMessageParam

from tests.server import Server

QUESTION: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What is the capital of France?"}]


def sse_events(response: httpx.Response) -> list[Any]:
    """Every `data:` payload of an SSE response, checking the framing byte for byte."""
    body = response.read().decode()
    frames = body.split("\n\n")
    assert frames[-1] == "", "the stream must end with a blank line"
    events: list[Any] = []
    for frame in frames[:-1]:
        assert frame.startswith("data: "), frame
        payload = frame[len("data: ") :]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def check_chat_chunks(events: list[Any], n: int, include_usage: bool) -> dict[int, str]:
    """Assert the OpenAI chunk shape on every event; return each choice's reassembled text."""
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    ids = {c["id"] for c in chunks}
    created = {c["created"] for c in chunks}
    assert len(ids) == 1 and next(iter(ids)).startswith("chatcmpl-")
    assert len(created) == 1
    texts: dict[int, str] = {}
    finished: dict[int, str] = {}
    body = chunks[:-1] if include_usage else chunks
    for chunk in body:
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "smollm2"
        assert set(chunk) >= {"id", "object", "created", "model", "choices", "system_fingerprint"}
        assert ("usage" in chunk) == include_usage
        if include_usage:
            assert chunk["usage"] is None
        assert len(chunk["choices"]) == 1
        choice = chunk["choices"][0]
        index = choice["index"]
        assert index not in finished, "nothing may follow a choice's finish_reason"
        if index not in texts:
            assert choice["delta"] == {"role": "assistant", "content": ""}, "the first delta carries the role"
            texts[index] = ""
        else:
            assert "role" not in choice["delta"]
            texts[index] += choice["delta"].get("content", "")
        if choice["finish_reason"] is not None:
            assert choice["finish_reason"] in ("stop", "length")
            assert choice["delta"] == {}
            finished[index] = choice["finish_reason"]
    assert sorted(finished) == list(range(n)), "every choice ends with a finish_reason"
    if include_usage:
        usage_chunk = chunks[-1]
        assert usage_chunk["choices"] == []
        usage = usage_chunk["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    # OpenArc's performance report rides on the stream's last chunk only.
    assert [i for i, c in enumerate(chunks) if "performance" in c] == [len(chunks) - 1]
    check_performance(chunks[-1]["performance"])
    return texts


def check_performance(report: dict[str, Any]) -> None:
    assert set(report) == {"time_to_first_token_ms", "prefill_tokens_per_s", "decode_tokens_per_s", "total_time_ms"}
    assert 0 < report["time_to_first_token_ms"] <= report["total_time_ms"]
    assert report["prefill_tokens_per_s"] > 0
    assert report["decode_tokens_per_s"] > 0


def test_chat_non_streaming_answers(server: Server) -> None:
    completion = server.client().chat.completions.create(
        model="smollm2", messages=QUESTION, max_tokens=30, temperature=0
    )
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "smollm2"
    choice = completion.choices[0]
    assert "Paris" in (choice.message.content or "")
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 10
    assert completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert completion.model_extra is not None
    check_performance(completion.model_extra["performance"])


def test_chat_streaming_matches_non_streaming(server: Server) -> None:
    client = server.client()
    stream = client.chat.completions.create(
        model="smollm2", messages=QUESTION, max_tokens=30, temperature=0, stream=True
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    whole = client.chat.completions.create(model="smollm2", messages=QUESTION, max_tokens=30, temperature=0)
    assert streamed == whole.choices[0].message.content
    assert "Paris" in streamed


def test_chat_stream_chunk_shapes_with_usage_and_n(server: Server) -> None:
    body = {
        "model": "smollm2",
        "messages": QUESTION,
        "max_tokens": 12,
        "n": 2,
        "seed": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with server.http() as http, http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        texts = check_chat_chunks(sse_events(response), n=2, include_usage=True)
    assert all(texts[i] for i in range(2))


def test_chat_stream_without_usage_has_no_usage_key(server: Server) -> None:
    body = {"model": "smollm2", "messages": QUESTION, "max_tokens": 5, "stream": True}
    with server.http() as http, http.stream("POST", "/v1/chat/completions", json=body) as response:
        texts = check_chat_chunks(sse_events(response), n=1, include_usage=False)
    assert texts[0]


def test_max_tokens_ends_with_length(server: Server) -> None:
    completion = server.client().chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        max_tokens=5,
        temperature=0,
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 5


def test_stop_string_is_never_leaked(server: Server) -> None:
    client = server.client()
    free = client.chat.completions.create(model="smollm2", messages=QUESTION, max_tokens=30, temperature=0)
    text = free.choices[0].message.content or ""
    assert "Paris" in text
    stopped = client.chat.completions.create(
        model="smollm2", messages=QUESTION, max_tokens=30, temperature=0, stop=["aris"]
    )
    assert stopped.choices[0].message.content == text[: text.index("aris")]
    assert stopped.choices[0].finish_reason == "stop"
    stream = client.chat.completions.create(
        model="smollm2", messages=QUESTION, max_tokens=30, temperature=0, stop="aris", stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == text[: text.index("aris")]


def test_multi_turn_with_system_and_text_parts(server: Server) -> None:
    completion = server.client().chat.completions.create(
        model="smollm2",
        messages=[
            {"role": "system", "content": "You answer in one short sentence."},
            {"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]},
            {"role": "assistant", "content": "Paris."},
            {"role": "developer", "content": "Stay brief."},
            {"role": "user", "content": "And of Italy?"},
        ],
        max_tokens=20,
        temperature=0,
        user="tester",
    )
    assert completion.choices[0].message.content


def test_seed_makes_sampling_reproducible(server: Server) -> None:
    client = server.client()

    def sample(seed: int) -> str:
        completion = client.chat.completions.create(
            model="smollm2",
            messages=[{"role": "user", "content": "Tell me a story."}],
            max_tokens=20,
            temperature=1.0,
            seed=seed,
        )
        return completion.choices[0].message.content or ""

    assert sample(1234) == sample(1234)
    samples = {sample(seed) for seed in range(4)}
    assert len(samples) > 1, "different seeds should sample differently"


def test_completions_string_list_echo_and_stream(server: Server) -> None:
    client = server.client()
    one = client.completions.create(model="smollm2", prompt="1, 2, 3, 4,", max_tokens=6, temperature=0)
    assert one.object == "text_completion"
    assert one.id.startswith("cmpl-")
    assert " 5" in one.choices[0].text
    many = client.completions.create(
        model="smollm2", prompt=["1, 2, 3, 4,", "a, b, c, d,"], max_tokens=6, temperature=0, echo=True
    )
    assert [c.index for c in many.choices] == [0, 1]
    assert many.choices[0].text == "1, 2, 3, 4," + one.choices[0].text
    assert many.choices[1].text.startswith("a, b, c, d,")
    assert many.usage is not None and many.usage.completion_tokens == 12
    stream = client.completions.create(
        model="smollm2",
        prompt="1, 2, 3, 4,",
        max_tokens=6,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "text_completion" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert "".join(c.choices[0].text for c in chunks if c.choices) == one.choices[0].text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert [i for i, c in enumerate(chunks) if c.model_extra and "performance" in c.model_extra] == [len(chunks) - 1]
    assert one.model_extra is not None
    check_performance(one.model_extra["performance"])


def test_models_list_and_get(server: Server) -> None:
    client = server.client()
    models = client.models.list()
    assert [m.id for m in models.data] == ["smollm2"]
    model = client.models.retrieve("smollm2")
    assert model.object == "model" and model.owned_by == "openarc" and model.created > 0
    with server.http() as http:
        missing = http.get("/v1/models/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


def test_utf8_output_is_never_broken(server: Server) -> None:
    stream = server.client().chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Répète exactement: « café, naïve, 日本語, 🙂 »"}],
        max_tokens=40,
        temperature=0,
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "\ufffd" not in text
    assert text


def metric(text: str, name: str) -> float:
    """The sum of every sample of `name` (all label sets) in a Prometheus exposition."""
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    assert found, f"{name} missing from /metrics"
    return total


def test_prometheus_metrics_after_traffic(server: Server) -> None:
    client = server.client()
    exact = {"ignore_eos": True}
    client.chat.completions.create(model="smollm2", messages=QUESTION, max_tokens=8, extra_body=exact)
    stream = client.chat.completions.create(
        model="smollm2", messages=QUESTION, max_tokens=8, stream=True, extra_body=exact
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    with server.http() as http:
        http.post("/v1/chat/completions", json={"model": "smollm2", "messages": []})
        server.wait_until(lambda: server.status()["smollm2"]["replicas"][0]["active"] == 0, what="idle")
        response = httpx.get(f"{server.url}/metrics")  # open without a key by default
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric(text, "openarc:time_to_first_token_seconds_count") >= 2
    assert metric(text, "openarc:time_to_first_token_seconds_sum") > 0
    assert metric(text, "openarc:inter_token_latency_seconds_count") > 0
    assert metric(text, "openarc:e2e_request_latency_seconds_count") >= 2
    assert metric(text, "openarc:prompt_tokens_total") > 0
    assert metric(text, "openarc:generation_tokens_total") >= 16
    assert metric(text, 'openarc:request_success_total{finished_reason="length",model_name="smollm2"}') >= 2
    assert metric(text, 'openarc:http_responses_total{status="200"}') >= 2
    assert metric(text, 'openarc:http_responses_total{status="400"}') >= 1
    assert metric(text, "openarc:num_requests_running") == 0
    assert metric(text, "openarc:num_requests_waiting") == 0
    assert metric(text, "openarc:kv_cache_usage_perc") == 0, "no KV in use once idle"
    assert metric(text, "openarc:worker_restarts_total") == 0
    # Every generated token came out of a step that carried its sequence, and a step takes ms, not seconds.
    steps = metric(text, "openarc:engine_steps_total")
    assert steps >= 8
    assert metric(text, "openarc:engine_step_sequences_total") >= metric(text, "openarc:generation_tokens_total")
    assert 0 < metric(text, "openarc:engine_step_seconds_total") < steps * 5
