"""`/v1/chat/completions` request and response shapes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
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


# OpenAI's rule for function names.
FunctionName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class FunctionDefinition(Request, kw_only=True):
    name: FunctionName
    description: str | None = None
    # A JSON schema of the arguments object; none means no arguments.
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(Request, kw_only=True):
    function: FunctionDefinition
    type: Literal["function"] = "function"


class NamedFunction(Request, kw_only=True):
    name: str


class NamedToolChoice(Request, kw_only=True):
    function: NamedFunction
    type: Literal["function"] = "function"


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class TextFormat(Request, tag_field="type", tag="text", kw_only=True):
    pass


class JSONObjectFormat(Request, tag_field="type", tag="json_object", kw_only=True):
    pass


class JSONSchema(Request, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=64)] = "response"
    description: str | None = None
    # `schema` is the wire name; msgspec Structs have no attribute of that name to clash with.
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class JSONSchemaFormat(Request, tag_field="type", tag="json_schema", kw_only=True):
    json_schema: JSONSchema


ResponseFormat = TextFormat | JSONObjectFormat | JSONSchemaFormat


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
    logprobs: bool | None = None
    tools: Annotated[list[Tool], Meta(max_length=128)] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    # Extra variables for the chat template, e.g. {"enable_thinking": false} (vLLM's extension).
    chat_template_kwargs: dict[str, Any] | None = None
    # Accepted so that they can be refused with a clear message instead of being ignored.
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    # OpenAI's deprecated forms of tools and tool_choice.
    functions: list[Any] | None = None
    function_call: Any | None = None


class FunctionCallOut(Response, kw_only=True):
    name: str
    arguments: str


class ToolCallOut(Response, kw_only=True):
    id: str
    function: FunctionCallOut
    type: Literal["function"] = "function"


class TopLogprob(Response, kw_only=True):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(Response, kw_only=True):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprob] = msgspec.field(default_factory=list)


class ChoiceLogprobs(Response, kw_only=True):
    content: list[TokenLogprob] | None
    refusal: None = None


class ChatMessage(Response, kw_only=True):
    content: str | None
    role: Literal["assistant"] = "assistant"
    refusal: None = None
    # Absent unless the model called tools.
    tool_calls: list[ToolCallOut] | UnsetType = UNSET
    # Absent unless the model has a reasoning parser (vLLM's field name).
    reasoning_content: str | UnsetType | None = UNSET


class ChatChoice(Response, kw_only=True):
    index: int
    message: ChatMessage
    finish_reason: FinishReason | None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(Response, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None
    object: Literal["chat.completion"] = "chat.completion"
    performance: Performance | UnsetType = UNSET


class FunctionCallDelta(Response, kw_only=True):
    name: str | UnsetType = UNSET
    arguments: str | UnsetType = UNSET


class ToolCallDelta(Response, kw_only=True):
    """The first delta of call `index` has its id, type and name; the rest carry argument fragments."""

    index: int
    function: FunctionCallDelta
    id: str | UnsetType = UNSET
    type: Literal["function"] | UnsetType = UNSET


class ChatDelta(Response, kw_only=True):
    role: Literal["assistant"] | UnsetType = UNSET
    content: str | UnsetType = UNSET
    reasoning_content: str | UnsetType = UNSET
    tool_calls: list[ToolCallDelta] | UnsetType = UNSET


class ChatChunkChoice(Response, kw_only=True):
    index: int
    delta: ChatDelta
    finish_reason: FinishReason | None = None
    logprobs: ChoiceLogprobs | None = None


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
