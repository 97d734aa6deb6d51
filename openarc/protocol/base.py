"""Shared pieces of the OpenAI wire format."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

FinishReason = Literal["stop", "length", "tool_calls"]
Temperature = Annotated[float, Meta(ge=0, le=2)]
Penalty = Annotated[float, Meta(ge=-2, le=2)]
TopP = Annotated[float, Meta(gt=0, le=1)]
# Counts cross to the engine as 32-bit integers; nothing larger can mean anything there.
MAX_INT32 = 2**31 - 1
PositiveInt = Annotated[int, Meta(ge=1, le=MAX_INT32)]
StopSequence = Annotated[str, Meta(min_length=1)]


class Request(msgspec.Struct, kw_only=True):
    """Base of request bodies: unknown fields are accepted (clients send extras), and logged by the API layer."""


class Response(msgspec.Struct, kw_only=True):
    """Base of response bodies: every field is written, `null` included, as OpenAI clients expect."""


class StreamOptions(Request, kw_only=True):
    include_usage: bool = False


class SamplingRequest(Request, kw_only=True):
    """Sampling fields common to chat and text completions."""

    model: Annotated[str, Meta(min_length=1)]
    max_tokens: PositiveInt | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    # 0 or -1 disables top-k, as in vLLM.
    top_k: Annotated[int, Meta(ge=-1, le=MAX_INT32)] | None = None
    # 1 would keep only tokens as likely as the most likely one: GenAI refuses it, so do we.
    min_p: Annotated[float, Meta(ge=0, lt=1)] | None = None
    seed: Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)] | None = None
    stop: StopSequence | Annotated[list[StopSequence], Meta(max_length=16)] | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    repetition_penalty: Annotated[float, Meta(gt=0, le=10)] | None = None
    n: Annotated[int, Meta(ge=1, le=16)] = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    ignore_eos: bool = False
    # Accepted so that they can be refused with a clear message instead of being ignored.
    logit_bias: dict[str, float] | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None


class Usage(Response, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Performance(Response, kw_only=True):
    """OpenArc's extension field `performance`: how the daemon served this request (standard `usage` is untouched).

    Times run from the request's arrival at the engine, so queueing shows in the time to first token.
    """

    time_to_first_token_ms: float | None
    # Prompt tokens over the time to the first token (null before any token).
    prefill_tokens_per_s: float | None
    # Tokens after the first over the time after it, summed over choices (null with fewer than two tokens).
    decode_tokens_per_s: float | None
    total_time_ms: float


class ErrorBody(Response, kw_only=True):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(Response, kw_only=True):
    error: ErrorBody
