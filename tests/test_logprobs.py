"""Token logprobs in OpenAI's shapes, tokens that split a character included (no engine)."""

from __future__ import annotations

import msgspec

from openarc.ipc import RequestOutput, TokenPiece
from openarc.serving.logprobs import chat_logprobs, completion_logprobs

# "a🦉b" as a byte-level vocabulary spells it: the owl's four bytes over three tokens, none of them a character.
PIECES: list[TokenPiece] = ["a", [0xF0, 0x9F], [0xA6], [0x89], "b"]


def test_chat_logprobs_escape_partial_tokens_and_keep_their_bytes() -> None:
    content = chat_logprobs(PIECES, [-0.5] * 5).content
    assert content is not None
    assert [item.token for item in content] == ["a", "\\xf0\\x9f", "\\xa6", "\\x89", "b"]
    assert b"".join(bytes(item.bytes or []) for item in content).decode() == "a🦉b"
    assert (chat_logprobs(["é"], [0.0]).content or [])[0].bytes == [0xC3, 0xA9]


def test_completion_offsets_do_not_move_inside_a_character() -> None:
    logprobs = completion_logprobs(PIECES, [-0.5] * 5, 10)
    assert logprobs.tokens == ["a", "\\xf0\\x9f", "\\xa6", "\\x89", "b"]
    assert logprobs.text_offset == [10, 11, 11, 11, 11]


def test_token_bytes_cross_the_worker_pipe_as_bytes() -> None:
    output = RequestOutput(1, logprobs=[-0.5] * 5, token_texts=PIECES)
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(output), type=RequestOutput)
    assert decoded.token_texts == PIECES
