"""Chat completions: OpenAI messages → the worker's chat template → choices or chunk events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from msgspec import UNSET, UnsetType

from openarc.engine.engine import Engine
from openarc.engine.errors import ModelUnavailable
from openarc.engine.stream import StreamDelta
from openarc.ipc import ChatPrompt, ImageData
from openarc.metrics import Metrics
from openarc.protocol.base import FinishReason, Performance, Usage
from openarc.protocol.chat import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChatMessage,
    ChoiceLogprobs,
    DeveloperMessage,
    FunctionCallDelta,
    FunctionCallOut,
    ImageUrlPart,
    InputAudioPart,
    Message,
    SystemMessage,
    ToolCallDelta,
    ToolCallOut,
    ToolMessage,
    UserMessage,
    message_text,
)
from openarc.serving import chat_tools
from openarc.serving.chat_output import ChoiceOutput, OutputDelta, message_fields
from openarc.serving.errors import invalid_request, unavailable, unsupported
from openarc.serving.generation import Generation
from openarc.serving.ids import SYSTEM_FINGERPRINT, response_id
from openarc.serving.images import ImageError, ImageLimits, load_image
from openarc.serving.logprobs import chat_logprobs
from openarc.serving.models import resolve
from openarc.serving.reasoning_parsers import default_reasoning_parser
from openarc.serving.sampling import check_common, sampling_params, token_budget
from openarc.serving.sse import SLOT, event, template
from openarc.serving.tool_parsers import ToolCallDelta as ParsedCallDelta


def _check_supported(request: ChatCompletionRequest) -> None:
    check_common(request)
    if request.modalities not in (None, ["text"]):
        raise unsupported("modalities", "Only text output is available.")
    for field in ("audio", "prediction"):
        if getattr(request, field) is not None:
            raise unsupported(field)
    for field in ("functions", "function_call"):
        if getattr(request, field) is not None:
            raise unsupported(field, "Use `tools` and `tool_choice`, which replaced them.")


# Their call markers ([TOOL_CALLS], <|python_tag|>) are special tokens in the models' own tokenizers.
_SPECIAL_MARKER_PARSERS = ("mistral", "llama3_json")


def _reasoning_parser(configured: str | None, chat_template: str) -> str | None:
    if configured == "none":
        return None
    return configured or default_reasoning_parser(chat_template)


# Chat templates know no developer role: it is the system prompt under a newer name.
_TEMPLATE_ROLES: dict[type, str] = {
    SystemMessage: "system",
    DeveloperMessage: "system",
    UserMessage: "user",
    AssistantMessage: "assistant",
    ToolMessage: "tool",
}


def template_messages(
    messages: list[Message], accepts_images: bool
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Messages as the dicts chat templates read (developer messages are system messages to a template), and each
    image part's (param, URL) in order. A vlm model gets GenAI's `<ov_genai_image_N>` tag where each image was, so
    images land where the client put them, in any turn."""
    rendered = []
    images: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        content = message_text(message.content)
        if isinstance(message.content, list):
            pieces = []
            for j, part in enumerate(message.content):
                if isinstance(part, ImageUrlPart):
                    if not accepts_images:
                        raise invalid_request("This model does not accept images.", f"messages[{i}].content[{j}]")
                    pieces.append(f"<ov_genai_image_{len(images)}>")
                    images.append((f"messages[{i}].content[{j}].image_url", part.image_url.url))
                elif isinstance(part, InputAudioPart):
                    raise invalid_request("This model does not accept audio.", f"messages[{i}].content[{j}]")
                else:
                    pieces.append(part.text)
            content = "".join(pieces)
        entry: dict[str, Any] = {"role": _TEMPLATE_ROLES[type(message)], "content": content}
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
    return rendered, images


async def load_images(refs: list[tuple[str, str]], limits: ImageLimits) -> list[ImageData]:
    """Every image of the request, decoded concurrently off the event loop; the first bad one is a 400 naming it."""
    results = await asyncio.gather(*(load_image(url, limits) for _, url in refs), return_exceptions=True)
    images = []
    for (param, _), result in zip(refs, results, strict=True):
        if isinstance(result, ImageError):
            raise invalid_request(f"Invalid image: {result}", param, "invalid_image")
        if isinstance(result, BaseException):
            raise result
        images.append(ImageData(result.pixels, result.width, result.height))
    return images


class ChatServing:
    def __init__(
        self,
        engine: Engine,
        metrics: Metrics | None = None,
        timeout: float | None = None,
        image_limits: ImageLimits | None = None,
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self.timeout = timeout
        self.image_limits = image_limits or ImageLimits()

    async def create(self, request: ChatCompletionRequest) -> ChatCompletion | AsyncIterator[bytes]:
        model = resolve(self.engine, request.model)
        _check_supported(request)
        messages, image_refs = template_messages(request.messages, model.config.task == "vlm")
        images = await load_images(image_refs, self.image_limits) if image_refs else []
        if (request.tools or _has_tool_turns(request.messages)) and not model.chat_template:
            # The template decides how tools are rendered: wait for a worker to report it.
            try:
                await model.wait_for_replica()
            except ModelUnavailable as exc:
                raise unavailable(str(exc)) from None
        tools = chat_tools.plan(request, model.chat_template, model.config.tool_parser)
        reasoning = _reasoning_parser(model.config.reasoning_parser, model.chat_template)
        messages, template_tools = chat_tools.render_for_template(messages, tools.template_tools, model.chat_template)
        prompt = ChatPrompt(
            messages, template_tools, request.chat_template_kwargs, report_tail=reasoning is not None, images=images
        )
        budget = token_budget(
            request.max_completion_tokens or request.max_tokens,
            model.config.generation.max_tokens,
            model.config.max_tokens_limit,
            "max_completion_tokens" if request.max_completion_tokens is not None else "max_tokens",
        )
        keep_special = tools.mode == "auto" and tools.parser in _SPECIAL_MARKER_PARSERS
        params = [
            sampling_params(
                request, model.config.generation, budget, i, tools.json_schema, bool(request.logprobs), keep_special
            )
            for i in range(request.n)
        ]
        request_id = response_id("chatcmpl")
        generation = await Generation.start(
            request_id, self.engine, model, [prompt], params, self.metrics, self.timeout, prompt_param="messages"
        )
        outputs = [ChoiceOutput(tools, reasoning, stream.prompt_tail) for stream in generation.streams]
        if request.stream:
            include_usage = request.stream_options is not None and request.stream_options.include_usage
            return self._stream(generation, request.model, include_usage, outputs)
        try:
            return await self._complete(generation, request.model, outputs, bool(request.logprobs))
        finally:
            generation.close()

    async def _complete(
        self, generation: Generation, model: str, outputs: list[ChoiceOutput], logprobs: bool
    ) -> ChatCompletion:
        collected = await generation.collect()
        choices = []
        for i, (output, choice) in enumerate(zip(outputs, collected, strict=True)):
            output.feed(choice.text)
            output.finish()
            calls = [
                ToolCallOut(id=c.id, function=FunctionCallOut(name=c.name, arguments=c.arguments))
                for c in output.tool_calls()
            ]
            message = ChatMessage(**message_fields(output), tool_calls=calls or UNSET)
            choices.append(
                ChatChoice(
                    index=i,
                    message=message,
                    finish_reason=_finish_reason(generation.finish_reasons[i], output),
                    logprobs=chat_logprobs(choice.token_texts, choice.logprobs) if logprobs else None,
                )
            )
        return ChatCompletion(
            id=generation.request_id,
            created=int(time.time()),
            model=model,
            choices=choices,
            usage=generation.usage(),
            system_fingerprint=SYSTEM_FINGERPRINT,
            performance=generation.performance(),
        )

    def _stream(
        self, generation: Generation, model: str, include_usage: bool, outputs: list[ChoiceOutput]
    ) -> AsyncIterator[bytes]:
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

        def shaped(index: int, part: OutputDelta, logprobs: ChoiceLogprobs | None) -> Iterator[bytes]:
            if not part and logprobs is None:
                return
            delta = ChatDelta()
            if part.reasoning:
                delta.reasoning_content = part.reasoning
            # A chunk that only carries logprobs (its text is held back) still has a content field.
            if part.content or (logprobs is not None and not part):
                delta.content = part.content
            if part.calls:
                delta.tool_calls = [_call_delta(call) for call in part.calls]
            yield chunk([ChatChunkChoice(index=index, delta=delta, logprobs=logprobs)])

        def render(index: int, delta: StreamDelta) -> Iterator[bytes]:
            output = outputs[index]
            tokens, lps = delta.token_texts, delta.logprobs
            logprobs = chat_logprobs(tokens, lps) if tokens and lps else None
            if output.plain and logprobs is None:
                if delta.text:
                    yield content[index](delta.text)
            else:
                yield from shaped(index, output.feed(delta.text), logprobs)
            if delta.finish_reason is not None:
                if not output.plain:
                    yield from shaped(index, output.finish(), None)
                reason = _finish_reason(delta.finish_reason, output)
                choice = ChatChunkChoice(index=index, delta=ChatDelta(), finish_reason=reason)
                yield chunk([choice], performance=closing())

        opening = (
            chunk([ChatChunkChoice(index=index, delta=ChatDelta(role="assistant", content=""))])
            for index in range(len(generation.streams))
        )
        # The stream's last chunk carries the performance report: the usage chunk, or else the last finish chunk.
        usage_event = (lambda usage: chunk([], usage, generation.performance())) if include_usage else None
        closing = (lambda: UNSET) if include_usage else generation.last_finish_performance
        return generation.events(opening, render, usage_event)


def _has_tool_turns(messages: list[Message]) -> bool:
    return any(isinstance(m, ToolMessage) or (isinstance(m, AssistantMessage) and m.tool_calls) for m in messages)


def _finish_reason(reason: FinishReason | None, output: ChoiceOutput) -> FinishReason | None:
    # A call ends the turn: the client must run it, whatever stopped the text.
    return "tool_calls" if output.called and reason == "stop" else reason


def _call_delta(call: ParsedCallDelta) -> ToolCallDelta:
    if call.id is not None and call.name is not None:
        return ToolCallDelta(
            index=call.index, id=call.id, type="function", function=FunctionCallDelta(name=call.name, arguments="")
        )
    return ToolCallDelta(index=call.index, function=FunctionCallDelta(arguments=call.arguments))
