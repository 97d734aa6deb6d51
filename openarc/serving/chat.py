"""Chat completions: OpenAI messages → the worker's chat template → choices or chunk events."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from msgspec import UNSET, UnsetType

from openarc.engine.engine import Engine
from openarc.engine.stream import StreamDelta
from openarc.ipc import ChatPrompt
from openarc.metrics import Metrics
from openarc.protocol.base import Performance, Usage
from openarc.protocol.chat import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChatMessage,
    DeveloperMessage,
    ImageUrlPart,
    InputAudioPart,
    Message,
    SystemMessage,
    TextFormat,
    ToolMessage,
    UserMessage,
    message_text,
)
from openarc.serving.errors import invalid_request, unsupported
from openarc.serving.generation import Generation
from openarc.serving.ids import SYSTEM_FINGERPRINT, response_id
from openarc.serving.models import resolve
from openarc.serving.sampling import bounded_max_tokens, check_common, sampling_params
from openarc.serving.sse import SLOT, event, template


def _check_supported(request: ChatCompletionRequest) -> None:
    check_common(request)
    if request.logprobs:
        raise unsupported("logprobs")
    if request.tools:
        raise unsupported("tools", "Tool calling is not available yet.")
    if request.tool_choice not in (None, "none", "auto"):
        raise unsupported("tool_choice", "Tool calling is not available yet.")
    if request.response_format is not None and not isinstance(request.response_format, TextFormat):
        raise unsupported("response_format", 'Only {"type": "text"} is available yet.')
    if request.modalities not in (None, ["text"]):
        raise unsupported("modalities", "Only text output is available.")
    for field in ("audio", "prediction"):
        if getattr(request, field) is not None:
            raise unsupported(field)


# Chat templates know no developer role: it is the system prompt under a newer name.
_TEMPLATE_ROLES: dict[type, str] = {
    SystemMessage: "system",
    DeveloperMessage: "system",
    UserMessage: "user",
    AssistantMessage: "assistant",
    ToolMessage: "tool",
}


def template_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Messages as the dicts chat templates read; developer messages are system messages to a template."""
    rendered = []
    for i, message in enumerate(messages):
        if isinstance(message.content, list):
            for j, part in enumerate(message.content):
                if isinstance(part, ImageUrlPart):
                    raise invalid_request("This model does not accept images.", f"messages[{i}].content[{j}]")
                if isinstance(part, InputAudioPart):
                    raise invalid_request("This model does not accept audio.", f"messages[{i}].content[{j}]")
        entry: dict[str, Any] = {"role": _TEMPLATE_ROLES[type(message)], "content": message_text(message.content)}
        if isinstance(message, AssistantMessage) and message.tool_calls:
            entry["tool_calls"] = [
                {"id": c.id, "type": c.type, "function": {"name": c.function.name, "arguments": c.function.arguments}}
                for c in message.tool_calls
            ]
        if isinstance(message, ToolMessage):
            entry["tool_call_id"] = message.tool_call_id
        if getattr(message, "name", None):
            entry["name"] = message.name  # type: ignore[union-attr]
        rendered.append(entry)
    return rendered


class ChatServing:
    def __init__(self, engine: Engine, metrics: Metrics | None = None, timeout: float | None = None) -> None:
        self.engine = engine
        self.metrics = metrics
        self.timeout = timeout

    async def create(self, request: ChatCompletionRequest) -> ChatCompletion | AsyncIterator[bytes]:
        model = resolve(self.engine, request.model)
        _check_supported(request)
        prompt = ChatPrompt(template_messages(request.messages))
        max_tokens = bounded_max_tokens(
            request.max_completion_tokens or request.max_tokens,
            model.config.generation.max_tokens,
            model.config.max_tokens_limit,
        )
        params = [sampling_params(request, model.config.generation, max_tokens, i) for i in range(request.n)]
        request_id = response_id("chatcmpl")
        generation = await Generation.start(
            request_id, self.engine, model, [prompt], params, self.metrics, self.timeout
        )
        if request.stream:
            include_usage = request.stream_options is not None and request.stream_options.include_usage
            return self._stream(generation, request.model, include_usage)
        try:
            return await self._complete(generation, request.model)
        finally:
            generation.close()

    async def _complete(self, generation: Generation, model: str) -> ChatCompletion:
        texts = await generation.collect()
        choices = [
            ChatChoice(index=i, message=ChatMessage(content=text), finish_reason=generation.finish_reasons[i])
            for i, text in enumerate(texts)
        ]
        return ChatCompletion(
            id=generation.request_id,
            created=int(time.time()),
            model=model,
            choices=choices,
            usage=generation.usage(),
            system_fingerprint=SYSTEM_FINGERPRINT,
            performance=generation.performance(),
        )

    def _stream(self, generation: Generation, model: str, include_usage: bool) -> AsyncIterator[bytes]:
        created = int(time.time())
        # OpenAI: with include_usage every chunk has "usage": null; without it, no usage key at all.
        usage_field: Usage | UnsetType | None = None if include_usage else UNSET

        def chunk(
            choices: list[ChatChunkChoice],
            usage: Usage | UnsetType | None = usage_field,
            performance: Performance | UnsetType = UNSET,
        ) -> bytes:
            return event(
                ChatCompletionChunk(
                    id=generation.request_id,
                    created=created,
                    model=model,
                    choices=choices,
                    system_fingerprint=SYSTEM_FINGERPRINT,
                    usage=usage,
                    performance=performance,
                )
            )

        content = [
            template(chunk([ChatChunkChoice(index=i, delta=ChatDelta(content=SLOT))]))
            for i in range(len(generation.streams))
        ]

        def render(index: int, delta: StreamDelta) -> Iterator[bytes]:
            if delta.text:
                yield content[index](delta.text)
            if delta.finish_reason is not None:
                choice = ChatChunkChoice(index=index, delta=ChatDelta(), finish_reason=delta.finish_reason)
                yield chunk([choice], performance=closing())

        opening = (
            chunk([ChatChunkChoice(index=index, delta=ChatDelta(role="assistant", content=""))])
            for index in range(len(generation.streams))
        )
        # The stream's last chunk carries the performance report: the usage chunk, or else the last finish chunk.
        usage_event = (lambda usage: chunk([], usage, generation.performance())) if include_usage else None
        closing = (lambda: UNSET) if include_usage else generation.last_finish_performance
        return generation.events(opening, render, usage_event)
