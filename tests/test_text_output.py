"""Detokenization and stop strings on the real SmolLM2 tokenizer (worker side, no pipeline needed)."""

from __future__ import annotations

from pathlib import Path

import openvino_genai
import pytest

from openarc.worker.text_output import TextOutput, decode_step


@pytest.fixture(scope="module")
def tokenizer(smollm2_gguf: Path) -> openvino_genai.Tokenizer:
    return openvino_genai.Tokenizer(str(smollm2_gguf))


def ids(tokenizer: openvino_genai.Tokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False).input_ids.data[0])


def stream(tokenizer: openvino_genai.Tokenizer, text: str, stop: list[str]) -> tuple[list[str], bool]:
    """Feed `text` one token at a time, as the engine does; return what was released at each step."""
    output = TextOutput(stop)
    released = []
    for token in ids(tokenizer, text):
        output.add_tokens([token])
        released.extend(decode_step(tokenizer, [output], [False]))
        if output.stopped:
            return released, True
    released.extend(decode_step(tokenizer, [output], [True]))
    return released, False


def test_multibyte_text_is_never_split(tokenizer: openvino_genai.Tokenizer) -> None:
    text = "héllo 日本語 🙂👍 naïve"
    released, stopped = stream(tokenizer, text, [])
    assert "".join(released) == text and not stopped
    assert all("\ufffd" not in piece for piece in released)


def test_stop_string_inside_a_token_cuts_exactly(tokenizer: openvino_genai.Tokenizer) -> None:
    released, stopped = stream(tokenizer, "The capital of France is Paris. It is big.", ["aris"])
    assert stopped
    assert "".join(released) == "The capital of France is P"


def test_partial_stop_string_is_held_back_then_released(tokenizer: openvino_genai.Tokenizer) -> None:
    released, stopped = stream(tokenizer, "one two three and a long tail of words", ["two thousand"])
    assert not stopped
    assert "".join(released) == "one two three and a long tail of words"
    # "two" could begin the stop string until "two th" failed to match: it is released only after that.
    before_mismatch = "".join(released[: len(ids(tokenizer, "one two t"))])
    assert "two" not in before_mismatch
    assert "two three" in "".join(released[:-1]), "held text is released once it cannot match"


def test_earliest_of_several_stop_strings_wins(tokenizer: openvino_genai.Tokenizer) -> None:
    released, stopped = stream(tokenizer, "alpha beta gamma delta", ["delta", "beta"])
    assert stopped and "".join(released) == "alpha "


def test_one_decode_serves_many_requests_and_skips_special_tokens(tokenizer: openvino_genai.Tokenizer) -> None:
    texts = ["The capital of France is Paris.", "日本語 🙂", "x = 1 + 2\n"]
    outputs = [TextOutput([]) for _ in texts]
    token_lists = [ids(tokenizer, t) for t in texts]
    eos = tokenizer.get_eos_token_id()
    released = ["" for _ in texts]
    for step in range(max(len(t) for t in token_lists) + 1):
        for output, tokens in zip(outputs, token_lists, strict=True):
            output.add_tokens(tokens[step : step + 1] or ([eos] if step == len(tokens) else []))
        finals = [step >= len(tokens) for tokens in token_lists]
        for i, piece in enumerate(decode_step(tokenizer, outputs, finals)):
            released[i] += piece
    assert released == texts


def test_outputs_that_keep_special_tokens_share_the_step(tokenizer: openvino_genai.Tokenizer) -> None:
    # <|im_start|> stands for a tool-call marker that is a special token ([TOOL_CALLS], <|python_tag|>).
    marked = ids(tokenizer, "<|im_start|>") + ids(tokenizer, " call")
    plain, keeping = TextOutput([]), TextOutput([], keep_special_tokens=True)
    for output in (plain, keeping):
        output.add_tokens(marked)
    assert decode_step(tokenizer, [plain, keeping], [True, True]) == [" call", "<|im_start|> call"]
