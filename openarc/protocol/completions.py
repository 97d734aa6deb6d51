"""`/v1/completions` request and response shapes."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, UnsetType

from openarc.protocol.base import FinishReason, Performance, Response, SamplingRequest, Usage


class CompletionRequest(SamplingRequest, kw_only=True):
    prompt: str | Annotated[list[str], Meta(min_length=1, max_length=64)]
    echo: bool = False
    # Accepted so that they can be refused with a clear message instead of being ignored.
    suffix: str | None = None
    best_of: int | None = None
    # 0: the chosen tokens' logprobs; more (top alternatives) is refused.
    logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None


class CompletionLogprobs(Response, kw_only=True):
    tokens: list[str]
    token_logprobs: list[float]
    # Character offset of each token in the choice's text (echoed prompt included).
    text_offset: list[int]
    top_logprobs: None = None


class CompletionChoice(Response, kw_only=True):
    index: int
    text: str
    finish_reason: FinishReason | None
    logprobs: CompletionLogprobs | None = None


class Completion(Response, kw_only=True):
    id: str
    created: int
    model: str
    choices: list[CompletionChoice]
    system_fingerprint: str | None = None
    object: Literal["text_completion"] = "text_completion"
    usage: Usage | UnsetType | None = UNSET
    # OpenArc's extension; on a stream, only on the last chunk.
    performance: Performance | UnsetType = UNSET
