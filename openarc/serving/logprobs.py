"""Token logprobs from the engine → OpenAI's chat and completions shapes (chosen tokens only, no alternatives)."""

from __future__ import annotations

from collections.abc import Sequence

from openarc.ipc import TokenPiece
from openarc.protocol.chat import ChoiceLogprobs, TokenLogprob
from openarc.protocol.completions import CompletionLogprobs


def token_text(piece: TokenPiece) -> str:
    """A token as text; one that is part of a character (its bytes) as \\xNN escapes, as OpenAI writes it."""
    return piece if isinstance(piece, str) else "".join(f"\\x{byte:02x}" for byte in piece)


def chat_logprobs(texts: Sequence[TokenPiece], logprobs: Sequence[float]) -> ChoiceLogprobs:
    """`bytes` are the token's own: a character split over tokens is rebuilt by joining theirs."""
    return ChoiceLogprobs(
        content=[
            TokenLogprob(
                token=token_text(piece),
                logprob=logprob,
                bytes=piece if isinstance(piece, list) else list(piece.encode()),
            )
            for piece, logprob in zip(texts, logprobs, strict=True)
        ]
    )


def completion_logprobs(texts: Sequence[TokenPiece], logprobs: Sequence[float], offset: int) -> CompletionLogprobs:
    """`offset`: where the first token starts in the choice's text (past earlier chunks). Part of a character
    adds nothing to the text until the character is whole, so its offset does not move."""
    offsets = []
    for piece in texts:
        offsets.append(offset)
        offset += len(piece) if isinstance(piece, str) else 0
    return CompletionLogprobs(tokens=[token_text(p) for p in texts], token_logprobs=list(logprobs), text_offset=offsets)
