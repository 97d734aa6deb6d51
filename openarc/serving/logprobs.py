"""Token logprobs from the engine → OpenAI's chat and completions shapes (chosen tokens only, no alternatives)."""

from __future__ import annotations

from collections.abc import Sequence

from openarc.protocol.chat import ChoiceLogprobs, TokenLogprob
from openarc.protocol.completions import CompletionLogprobs


def chat_logprobs(texts: Sequence[str], logprobs: Sequence[float]) -> ChoiceLogprobs:
    return ChoiceLogprobs(
        content=[
            TokenLogprob(token=text, logprob=logprob, bytes=list(text.encode()))
            for text, logprob in zip(texts, logprobs, strict=True)
        ]
    )


def completion_logprobs(texts: Sequence[str], logprobs: Sequence[float], offset: int) -> CompletionLogprobs:
    """`offset`: where the first token starts in the choice's text (after an echoed prompt)."""
    offsets = []
    for text in texts:
        offsets.append(offset)
        offset += len(text)
    return CompletionLogprobs(tokens=list(texts), token_logprobs=list(logprobs), text_offset=offsets)
