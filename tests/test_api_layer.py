"""The HTTP layer alone: body decoding and API keys on a tiny app, no engine."""

from __future__ import annotations

import msgspec
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from openarc.api.auth import OPEN_PATHS, APIKeyMiddleware
from openarc.api.body import decode_body
from openarc.protocol.chat import (
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    DeveloperMessage,
    TextPart,
    UserMessage,
)
from openarc.protocol.completions import CompletionRequest
from openarc.serving.chat import template_messages
from openarc.serving.errors import APIError
from openarc.serving.sse import SLOT, event, template


def test_decode_names_the_bad_field() -> None:
    with pytest.raises(APIError) as caught:
        body = b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 2}'
        decode_body(body, ChatCompletionRequest)
    assert (caught.value.status, caught.value.param) == (400, "top_p")
    assert "Expected `float` <= 1.0" in caught.value.message


def test_decode_accepts_unknown_fields() -> None:
    body = decode_body(
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "x_extra": 1}', ChatCompletionRequest
    )
    assert body.model == "m"


def test_decode_reads_null_as_unset_for_optional_fields() -> None:
    # OpenAI documents n, stream and echo as nullable; clients that serialise every field send them so.
    chat = decode_body(
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "n": null, "stream": null, "top_p": null}',
        ChatCompletionRequest,
    )
    assert (chat.n, chat.stream, chat.top_p) == (1, False, None)
    completion = decode_body(b'{"model": "m", "prompt": "x", "echo": null, "ignore_eos": null}', CompletionRequest)
    assert (completion.echo, completion.ignore_eos) == (False, False)
    # A required field is still required: null is not a model name.
    with pytest.raises(APIError) as caught:
        decode_body(b'{"model": null, "prompt": "x"}', CompletionRequest)
    assert (caught.value.status, caught.value.param) == (400, "model")


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_decode_refuses_deep_nesting_with_a_400(depth: int) -> None:
    body = b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "x": ' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(APIError) as caught:
        decode_body(body, ChatCompletionRequest)
    assert caught.value.status == 400
    assert caught.value.message == "The request body is nested too deeply."


def test_template_messages_flatten_parts_and_map_developer() -> None:
    messages = msgspec.convert(
        [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        ],
        list[DeveloperMessage | UserMessage],
    )
    assert isinstance(messages[1].content, list) and isinstance(messages[1].content[0], TextPart)
    assert template_messages(messages, accepts_images=False)[0] == [  # type: ignore[arg-type]
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "ab"},
    ]


def app_with_keys(
    keys: list[str], open_paths: frozenset[str] = OPEN_PATHS, admin_keys: list[str] | None = None
) -> TestClient:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hi")

    routes = [Route(path, hello) for path in ("/v1/x", "/health", "/metrics", "/openarc/models")]
    return TestClient(APIKeyMiddleware(Starlette(routes=routes), keys, open_paths, admin_keys or []))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_admin_keys_alone_open_management_routes() -> None:
    client = app_with_keys(["user"], admin_keys=["admin"])
    assert client.get("/openarc/models", headers=bearer("admin")).text == "hi"
    refused = client.get("/openarc/models", headers=bearer("user"))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "admin_key_required"
    assert client.get("/openarc/models").status_code == 401
    assert client.get("/openarc/models", headers=bearer("wrong")).status_code == 401
    # An admin key opens the API too; an API key still does.
    assert client.get("/v1/x", headers=bearer("admin")).text == "hi"
    assert client.get("/v1/x", headers=bearer("user")).text == "hi"


def test_admin_keys_without_api_keys_guard_only_management() -> None:
    client = app_with_keys([], admin_keys=["admin"])
    assert client.get("/v1/x").text == "hi"
    assert client.get("/openarc/models").status_code == 401
    assert client.get("/openarc/models", headers=bearer("admin")).text == "hi"


def test_without_admin_keys_api_keys_open_management() -> None:
    client = app_with_keys(["user"])
    assert client.get("/openarc/models", headers=bearer("user")).text == "hi"
    assert client.get("/openarc/models").status_code == 401


def test_api_keys_guard_everything_but_probes() -> None:
    client = app_with_keys(["k1", "k2"])
    assert client.get("/health").status_code == 200
    assert client.get("/v1/x").status_code == 401
    assert client.get("/v1/x", headers={"Authorization": "Bearer k3"}).status_code == 401
    assert client.get("/v1/x", headers={"Authorization": "Bearer k2"}).text == "hi"
    assert client.get("/v1/x", headers={"Authorization": "bearer k1"}).text == "hi"
    denied = client.get("/v1/x").json()
    assert denied["error"]["type"] == "authentication_error"


def test_metrics_route_follows_its_setting() -> None:
    assert app_with_keys(["k"]).get("/metrics").status_code == 401
    assert app_with_keys(["k"], OPEN_PATHS | {"/metrics"}).get("/metrics").text == "hi"


def test_no_keys_means_open() -> None:
    assert app_with_keys([]).get("/v1/x").text == "hi"


def test_event_template_is_byte_identical_to_encoding() -> None:
    def chunk(text: str) -> bytes:
        return event(
            ChatCompletionChunk(
                id="chatcmpl-1",
                created=1,
                model='m"odel',
                choices=[ChatChunkChoice(index=3, delta=ChatDelta(content=text))],
            )
        )

    fill = template(chunk(SLOT))
    for text in ["plain", 'quote " and \\ backslash', "ünïcödé 日本 🙂", "\n\t\u0001", ""]:
        assert fill(text) == chunk(text)
