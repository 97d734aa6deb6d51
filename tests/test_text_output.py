"""Detokenization and stop strings on the real SmolLM2 tokenizer (worker side, no pipeline needed), both ways:
by the tokenizer's decode, and by the byte table (token_bytes.py), which must give the same text."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import openvino_genai
import pytest

from openarc.worker.text_output import TextOutput, decode_step
from openarc.worker.token_bytes import decode_bytes, token_bytes


@pytest.fixture(scope="module")
def tokenizer(smollm2_gguf: Path) -> openvino_genai.Tokenizer:
    return openvino_genai.Tokenizer(str(smollm2_gguf))


@pytest.fixture(scope="module")
def table(tokenizer: openvino_genai.Tokenizer) -> list[bytes]:
    built = token_bytes(tokenizer)
    assert built is not None, "SmolLM2's GGUF vocabulary is byte-level BPE: its table must pass the check"
    return built


@pytest.fixture(params=["tokenizer", "table"])
def make_output(request: pytest.FixtureRequest, table: list[bytes]) -> Any:
    """TextOutput decoded by the tokenizer, or by the byte table."""
    chosen = table if request.param == "table" else None
    return lambda stop=(), keep_special_tokens=False: TextOutput(stop, keep_special_tokens, chosen)


def ids(tokenizer: openvino_genai.Tokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False).input_ids.data[0])


def stream(tokenizer: openvino_genai.Tokenizer, text: str, stop: list[str], make_output: Any) -> tuple[list[str], bool]:
    """Feed `text` one token at a time, as the engine does; return what was released at each step."""
    output = make_output(stop)
    released = []
    for token in ids(tokenizer, text):
        output.add_tokens([token])
        released.extend(decode_step(tokenizer, [output], [False]))
        if output.stopped:
            return released, True
    released.extend(decode_step(tokenizer, [output], [True]))
    return released, False


def test_multibyte_text_is_never_split(tokenizer: openvino_genai.Tokenizer, make_output: Any) -> None:
    text = "héllo 日本語 🙂👍 naïve"
    released, stopped = stream(tokenizer, text, [], make_output)
    assert "".join(released) == text and not stopped
    assert all("\ufffd" not in piece for piece in released)


def test_stop_string_inside_a_token_cuts_exactly(tokenizer: openvino_genai.Tokenizer, make_output: Any) -> None:
    released, stopped = stream(tokenizer, "The capital of France is Paris. It is big.", ["aris"], make_output)
    assert stopped
    assert "".join(released) == "The capital of France is P"


def test_partial_stop_string_is_held_back_then_released(tokenizer: openvino_genai.Tokenizer, make_output: Any) -> None:
    released, stopped = stream(tokenizer, "one two three and a long tail of words", ["two thousand"], make_output)
    assert not stopped
    assert "".join(released) == "one two three and a long tail of words"
    # "two" could begin the stop string until "two th" failed to match: it is released only after that.
    before_mismatch = "".join(released[: len(ids(tokenizer, "one two t"))])
    assert "two" not in before_mismatch
    assert "two three" in "".join(released[:-1]), "held text is released once it cannot match"


def test_earliest_of_several_stop_strings_wins(tokenizer: openvino_genai.Tokenizer, make_output: Any) -> None:
    released, stopped = stream(tokenizer, "alpha beta gamma delta", ["delta", "beta"], make_output)
    assert stopped and "".join(released) == "alpha "


def test_one_decode_serves_many_requests_and_skips_special_tokens(
    tokenizer: openvino_genai.Tokenizer, make_output: Any
) -> None:
    texts = ["The capital of France is Paris.", "日本語 🙂", "x = 1 + 2\n"]
    outputs = [make_output() for _ in texts]
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


def test_outputs_that_keep_special_tokens_share_the_step(tokenizer: openvino_genai.Tokenizer, make_output: Any) -> None:
    # <|im_start|> stands for a tool-call marker that is a special token ([TOOL_CALLS], <|python_tag|>).
    marked = ids(tokenizer, "<|im_start|>") + ids(tokenizer, " call")
    plain, keeping = make_output(), make_output(keep_special_tokens=True)
    for output in (plain, keeping):
        output.add_tokens(marked)
    assert decode_step(tokenizer, [plain, keeping], [True, True]) == [" call", "<|im_start|> call"]


def test_the_table_streams_exactly_what_the_tokenizer_decodes(
    tokenizer: openvino_genai.Tokenizer, table: list[bytes]
) -> None:
    """Random tokens, with lone bytes of multi-byte characters, malformed runs and special tokens among them,
    arriving 1 to 3 a step: the streamed text equals the tokenizer's decode of the whole sequence."""
    rng = random.Random(7)
    lone_bytes = [t for t, piece in enumerate(table) if len(piece) == 1 and piece[0] >= 0x80]
    byte_token = {piece[0]: t for t, piece in enumerate(table) if len(piece) == 1}
    malformed = [[byte_token[b] for b in run] for run in (b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe5\x88A")]
    sequences = []
    for _ in range(300):
        sequence: list[int] = []
        while len(sequence) < 24:
            draw = rng.random()
            if draw < 0.05:
                sequence.extend(rng.choice(malformed))
            else:
                sequence.append(rng.choice(lone_bytes) if draw < 0.3 else rng.randrange(len(table)))
        sequences.append(sequence)
    sequences.append(ids(tokenizer, "<|im_start|>héllo 日本語 🙂👍<|im_end|>"))
    expected = [tokenizer.decode(sequence, skip_special_tokens=True) for sequence in sequences]
    streamed = []
    for sequence in sequences:
        output, text, at = TextOutput([], token_bytes=table), "", 0
        while at < len(sequence):
            step = rng.randint(1, 3)
            output.add_tokens(sequence[at : at + step])
            at += step
            text += decode_step(tokenizer, [output], [at >= len(sequence)])[0]
        streamed.append(text)
    assert streamed == expected
    assert any("\ufffd" in text for text in expected), "the sample must include bytes GenAI shows as U+FFFD"


def test_ids_beyond_the_vocabulary_decode_to_nothing(table: list[bytes]) -> None:
    # A model's embedding can have more rows than its tokenizer has tokens (Qwen pads to a multiple of 128).
    assert decode_bytes(table, [len(table) + 5]) == b""
    output = TextOutput([], token_bytes=table)
    output.add_tokens([len(table), table.index(b"Hello")])
    assert output.advance_by_table(final=True) == "Hello"


def test_a_detokenizer_that_writes_u_fffd_for_bad_bytes_keeps_the_tokenizer_path(tiny_vlm: Path) -> None:
    # The tiny Qwen2-VL's tokenizer was converted from Hugging Face: it replaces malformed bytes its own way.
    assert token_bytes(openvino_genai.Tokenizer(str(tiny_vlm))) is None


class _FakeTokenizer:
    def __init__(self, vocab: dict[Any, int], strip_leading_space: bool = False) -> None:
        self.vocab = vocab
        self.by_id = {token: piece for piece, token in vocab.items()}
        self.strip = strip_leading_space

    def get_vocab(self) -> dict[Any, int]:
        return self.vocab

    def decode(self, tokens: list[Any], skip_special_tokens: bool = True) -> Any:
        if tokens and isinstance(tokens[0], list):
            return [self.decode(t, skip_special_tokens) for t in tokens]
        text = b"".join(self.by_id[t] for t in tokens).decode("utf-8", "ignore")
        return text[1:] if self.strip and text.startswith(" ") else text

    def encode(self, text: str, add_special_tokens: bool = True) -> Any:
        # The shape of GenAI's TokenizedInputs: .input_ids.data[0] is the token list.
        tokens = [self.vocab[b" "]] + [self.vocab[c.encode()] for c in text if c.encode() in self.vocab]
        return SimpleNamespace(input_ids=SimpleNamespace(data=[tokens]))


def test_vocabularies_that_are_not_plain_bytes_keep_the_tokenizer_path() -> None:
    pieces = [b" ", b"a", b"b", b" a", b"\xc3", b"\xa9"]
    plain = {piece: token for token, piece in enumerate(pieces)}
    assert token_bytes(_FakeTokenizer(plain)) is not None, "the fake itself decodes by concatenation"
    # SentencePiece-like: the detokenizer removes a leading space, which no table of bytes can reproduce.
    assert token_bytes(_FakeTokenizer(plain, strip_leading_space=True)) is None
    # A vocabulary of text, not bytes.
    assert token_bytes(_FakeTokenizer({piece.decode("latin-1"): t for piece, t in plain.items()})) is None


def test_a_tokenizer_the_table_cannot_read_keeps_the_tokenizer_path() -> None:
    class Broken(_FakeTokenizer):
        def decode(self, tokens: list[Any], skip_special_tokens: bool = True) -> Any:
            raise RuntimeError("detokenizer failed")

    assert token_bytes(Broken({b"a": 0})) is None
