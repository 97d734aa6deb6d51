"""OpenAI routes: parse the body, hand it to serving, return JSON or SSE."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from openarc.api.body import decode_body
from openarc.api.responses import json_response, respond
from openarc.protocol.chat import ChatCompletionRequest
from openarc.protocol.completions import CompletionRequest
from openarc.serving.models import model_card, model_list, resolve


async def chat_completions(request: Request) -> Response:
    body = decode_body(await request.body(), ChatCompletionRequest)
    return await respond(request, request.app.state.chat.create(body))


async def completions(request: Request) -> Response:
    body = decode_body(await request.body(), CompletionRequest)
    return await respond(request, request.app.state.completions.create(body))


async def list_models(request: Request) -> Response:
    return json_response(model_list(request.app.state.engine))


async def get_model(request: Request) -> Response:
    return json_response(model_card(resolve(request.app.state.engine, request.path_params["model_id"])))


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
]
