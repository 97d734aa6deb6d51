"""`/v1/chat/completions` request and response shapes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, UnsetType

from openarc.protocol.base import FinishReason, Performance, PositiveInt, Request, Response, SamplingRequest, Usage


class TextPart(Request, tag_field="type", tag="text", kw_only=True):
    text: str


class ImageUrl(Request, kw_only=True):
    url: str
    detail: Literal["auto", "low", "high"] = "auto"


class ImageUrlPart(Request, tag_field="type", tag="image_url", kw_only=True):
    image_url: ImageUrl


class InputAudio(Request, kw_only=True):
    data: str
    format: str


class InputAudioPart(Request, tag_field="type", tag="input_audio", kw_only=True):
    input_audio: InputAudio


UserPart = TextPart | ImageUrlPart | InputAudioPart


class FunctionCall(Request, kw_only=True):
    name: str
    arguments: str


class ToolCall(Request, kw_only=True):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class SystemMessage(Request, tag_field="role", tag="system", kw_only=True):
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(Request, tag_field="role", tag="developer", kw_only=True):
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(Request, tag_field="role", tag="user", kw_only=True):
    content: str | list[UserPart]
    name: str | None = None


class AssistantMessage(Request, tag_field="role", tag="assistant", kw_only=True):
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None


class ToolMessage(Request, tag_field="role", tag="tool", kw_only=True):
    content: str | list[TextPart]
    tool_call_id: str


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage


class ChatCompletionRequest(SamplingRequest, kw_only=True):
    messages: Annotated[list[Message], Meta(min_length=1)]
    max_completion_tokens: PositiveInt | None = None
    # Accepted so that they can be refused with a clear message instead of being ignored.
    logprobs: bool | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None


class ChatMessage(Response, kw_only=True):
    content: str | None
    role: Literal["assistant"] = "assistant"
    refusal: None = None
    tool_calls: list[ToolCall] | UnsetType = UNSET


class ChatChoice(Response, kw_only=True):
    index: int
    message: ChatMessage
    finish_reason: FinishReason | None
    logprobs: None = None


class ChatCompletion(Response, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None
    object: Literal["chat.completion"] = "chat.completion"
    performance: Performance | UnsetType = UNSET


class ChatDelta(Response, kw_only=True):
    role: Literal["assistant"] | UnsetType = UNSET
    content: str | UnsetType = UNSET


class ChatChunkChoice(Response, kw_only=True):
    index: int
    delta: ChatDelta
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(Response, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[ChatChunkChoice]
    system_fingerprint: str | None = None
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    # Absent unless stream_options.include_usage; then null on every chunk but the last.
    usage: Usage | UnsetType | None = UNSET
    # Only on the stream's last chunk.
    performance: Performance | UnsetType = UNSET


def message_text(content: str | list[Any] | None) -> str:
    """The text of a message's content, parts joined; non-text parts are refused before this is called."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content if isinstance(part, TextPart))
