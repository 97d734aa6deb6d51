"""Bad input gets an OpenAI-shaped 4xx naming the problem, and the server keeps serving."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.server import Server

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    return error


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"model": "smollm2", "messages": MESSAGES, "temperature": -1}, "temperature", ">= 0"),
        ({"model": "smollm2", "messages": MESSAGES, "temperature": "hot"}, "temperature", "Expected `float"),
        ({"model": "smollm2", "messages": MESSAGES, "max_tokens": 0}, "max_tokens", ">= 1"),
        ({"model": "smollm2", "messages": []}, "messages", "length >= 1"),
        ({"model": "smollm2"}, "messages", "missing required field"),
        ({"model": "smollm2", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", "wizard"),
        ({"model": "smollm2", "messages": [{"role": "user", "content": 5}]}, "messages[0].content", "Expected"),
        ({"model": "smollm2", "messages": MESSAGES, "n": 0}, "n", ">= 1"),
        ({"model": "smollm2", "messages": MESSAGES, "top_p": 0}, "top_p", "> 0"),
        ({"model": "smollm2", "messages": MESSAGES, "stop": ""}, "stop", "length >= 1"),
        ({"model": "smollm2", "messages": MESSAGES, "top_logprobs": 2}, "top_logprobs", "not supported"),
        ({"model": "smollm2", "messages": MESSAGES, "top_k": 2**64}, "top_k", "<= 2147483647"),
        ({"model": "smollm2", "messages": MESSAGES, "max_tokens": 2**40}, "max_tokens", "<= 2147483647"),
        ({"model": "smollm2", "messages": MESSAGES, "min_p": 1}, "min_p", "< 1"),
        ({"model": "smollm2", "messages": MESSAGES, "logit_bias": {"1": 5}}, "logit_bias", "not supported"),
        ({"model": "smollm2", "messages": MESSAGES, "functions": [{"name": "f"}]}, "functions", "Use `tools`"),
        ({"model": "smollm2", "messages": MESSAGES, "function_call": "auto"}, "function_call", "Use `tools`"),
        ({"model": "smollm2", "messages": MESSAGES, "tools": [{"type": "function"}]}, "tools[0]", "`function`"),
        (
            {"model": "smollm2", "messages": MESSAGES, "stream_options": {"include_usage": True}},
            "stream_options",
            "only allowed when `stream` is true",
        ),
        (
            {
                "model": "smollm2",
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,"}}]}
                ],
            },
            "messages[0].content[0]",
            "does not accept images",
        ),
    ],
)
def test_bad_chat_input_is_a_400_naming_the_field(
    server: Server, body: dict[str, Any], param: str, fragment: str
) -> None:
    with server.http() as http:
        error = error_of(http.post("/v1/chat/completions", json=body), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert fragment in error["message"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"", "not valid JSON"),
        (b'{"model": "smollm2", "x": ' + b"[" * 2000 + b"]" * 2000 + b"}", "nested too deeply"),
    ],
)
def test_unparseable_body_is_a_400(server: Server, content: bytes, fragment: str) -> None:
    with server.http() as http:
        error = error_of(
            http.post("/v1/chat/completions", content=content, headers={"content-type": "application/json"}), 400
        )
    assert fragment in error["message"]


def test_null_is_unset_for_optional_fields(server: Server) -> None:
    # OpenAI documents n, stream and echo as nullable; clients that serialise every field send them as null.
    with server.http() as http:
        chat = {"model": "smollm2", "messages": MESSAGES, "max_tokens": 2, "n": None, "stream": None, "seed": None}
        response = http.post("/v1/chat/completions", json=chat)
        assert response.status_code == 200, response.text
        assert len(response.json()["choices"]) == 1
        completion = {"model": "smollm2", "prompt": "Hi", "max_tokens": 2, "echo": None, "stream": None}
        response = http.post("/v1/completions", json=completion)
        assert response.status_code == 200, response.text
        assert response.json()["usage"]["completion_tokens"] <= 2


def test_unknown_model_is_404_model_not_found(server: Server) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        server.client().chat.completions.create(model="gpt-9", messages=MESSAGES)
    assert caught.value.code == "model_not_found"
    with server.http() as http:
        error = error_of(http.post("/v1/completions", json={"model": "gpt-9", "prompt": "x"}), 404)
    assert error["param"] == "model"


def test_context_overflow_is_a_400_before_streaming(server: Server) -> None:
    # ~9,000 tokens, which SmolLM2's tokenizer cuts to its first 8,192: the error must not call that the length.
    long_prompt = "hello " * 9000
    with server.http() as http:
        error = error_of(
            http.post("/v1/completions", json={"model": "smollm2", "prompt": long_prompt, "stream": True}), 400
        )
        assert (
            "maximum context length is 8192 tokens. However, your prompt has at least 8192 tokens" in error["message"]
        )
        # OpenAI's code and param, which agents read to trim a conversation and retry.
        assert (error["code"], error["param"]) == ("context_length_exceeded", "prompt")
        error = error_of(
            http.post(
                "/v1/chat/completions",
                json={"model": "smollm2", "messages": [{"role": "user", "content": long_prompt}], "max_tokens": 5},
            ),
            400,
        )
        assert "your prompt has at least 8192 tokens" in error["message"]
        assert (error["code"], error["param"]) == ("context_length_exceeded", "messages")
        error = error_of(
            http.post("/v1/chat/completions", json={"model": "smollm2", "messages": MESSAGES, "max_tokens": 9000}),
            400,
        )
        assert "maximum context length" in error["message"]
        assert (error["code"], error["param"]) == ("context_length_exceeded", "messages")
    with pytest.raises(openai.BadRequestError) as caught:
        server.client().chat.completions.create(model="smollm2", messages=MESSAGES, max_completion_tokens=9000)
    assert caught.value.code == "context_length_exceeded"


def test_unsupported_completion_parameters(server: Server) -> None:
    with server.http() as http:
        assert (
            error_of(http.post("/v1/completions", json={"model": "smollm2", "prompt": "x", "suffix": "y"}), 400)[
                "param"
            ]
            == "suffix"
        )
        # The echoed prompt would need logprobs of its own, which GenAI does not report: refused, not left out.
        echoed = {"model": "smollm2", "prompt": "x", "echo": True, "logprobs": 0}
        assert error_of(http.post("/v1/completions", json=echoed), 400)["param"] == "logprobs"
        # Token-id prompts are not accepted: the error points at the first id.
        assert (
            error_of(http.post("/v1/completions", json={"model": "smollm2", "prompt": [1, 2]}), 400)["param"]
            == "prompt[0]"
        )


def test_completion_requests_that_can_never_run_are_400s(server: Server) -> None:
    with server.http() as http:
        empty = error_of(http.post("/v1/completions", json={"model": "smollm2", "prompt": ""}), 400)
        assert "empty" in empty["message"]
        # 64 prompts x n=6 = 384 sequences: more than the model's 64 running + 256 waiting, ever.
        body = {"model": "smollm2", "prompt": ["x"] * 64, "n": 6, "max_tokens": 1}
        too_large = error_of(http.post("/v1/completions", json=body), 400)
        assert too_large["param"] == "n"
        assert "384 sequences" in too_large["message"]
        assert "at most 320" in too_large["message"]


def test_unknown_route_and_method_are_openai_shaped(server: Server) -> None:
    with server.http() as http:
        assert error_of(http.get("/v1/nothing-here"), 404)["type"] == "invalid_request_error"
        assert error_of(http.get("/v1/chat/completions"), 405)["type"] == "invalid_request_error"


def test_unknown_fields_are_accepted_and_logged_once(server: Server) -> None:
    client = server.client()
    for _ in range(2):
        completion = client.chat.completions.create(
            model="smollm2", messages=MESSAGES, max_tokens=3, extra_body={"frobnicate_level": 3}
        )
        assert completion.choices[0].message.content is not None
    assert server.log().count("ignoring unknown request field 'frobnicate_level'") == 1


def test_server_keeps_serving_after_bad_input(server: Server) -> None:
    with server.http() as http:
        for body in ({"model": "smollm2", "messages": []}, {"model": "smollm2", "messages": MESSAGES, "top_k": -5}):
            error_of(http.post("/v1/chat/completions", json=body), 400)
    completion = server.client().chat.completions.create(model="smollm2", messages=MESSAGES, max_tokens=5)
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert server.status()["smollm2"]["replicas"][0]["restarts"] == 0


def test_extreme_but_valid_sampling_values_are_served(server: Server) -> None:
    # Each of these rounds to 0 in GenAI's float32: the server must still mean what the client asked.
    for extreme in ({"temperature": 1e-40}, {"temperature": 1, "top_p": 1e-40}, {"repetition_penalty": 1e-40}):
        body = {"model": "smollm2", "messages": MESSAGES, "max_tokens": 2, **extreme}
        with server.http() as http:
            response = http.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, (extreme, response.text)
        assert response.json()["usage"]["completion_tokens"] >= 1
