"""Each token's bytes, so that byte-level BPE output is detokenized by table lookup instead of a tokenizer call.

GenAI's detokenizer runs as an OpenVINO model: one batched call for a step's 64 sequences took ~1 ms of the
worker's time between steps at C = 64, time in which neither core runs inference. In a byte-level BPE
vocabulary (GPT-2, Llama 3, Qwen, SmolLM) every token stands for fixed bytes, and GenAI's `get_vocab()` gives
them raw, so decoding is concatenation and then UTF-8 as GenAI's detokenizer reads it (`decode_utf8`).

The table is used only when it gives the tokenizer's own text on a sample of sequences (random tokens, lone
bytes, malformed UTF-8, special tokens, a few texts). A SentencePiece vocabulary (`▁`, byte-fallback tokens,
the leading space it removes), a detokenizer that cleans up spaces, or one that turns malformed bytes into
U+FFFD by another rule (the HF-converted tokenizer of the test VLM does) fails that check and keeps the
tokenizer path.
"""

from __future__ import annotations

import codecs
import logging
import random
from collections.abc import Sequence
from typing import Any

_SAMPLE_TEXTS = (
    "Hello , world . It 's a test !  Two  spaces,\ttabs\nand lines.",
    "héllo 日本語 🙂👍 naïve — «quotes» ½",
    "def f(x):\n    return [x, {'k': 1}]  # code\n",
)
# Byte runs a model can emit that are not UTF-8: a surrogate, overlong forms, beyond U+10FFFF, a cut-off
# character followed by ASCII, stray continuation bytes.
_MALFORMED = (b"\xed\xa0\x80", b"\xc0\x80", b"\xe0\x80\x80", b"\xf4\x90\x80\x80", b"\xf0\x9f\x98A", b"\x80\xbf")
_SAMPLE_SEQUENCES = 64
_SAMPLE_LENGTH = 16

log = logging.getLogger("openarc.worker")


def token_bytes(tokenizer: Any) -> list[bytes] | None:
    """The bytes of every token id (special tokens: none), or None when decoding is not plain concatenation."""
    try:
        return _build(tokenizer)
    except Exception:
        # Only a shortcut: a tokenizer it cannot read keeps the tokenizer path, and the model still loads.
        log.warning("could not build the token byte table; output is detokenized by the tokenizer", exc_info=True)
        return None


def _build(tokenizer: Any) -> list[bytes] | None:
    vocab = tokenizer.get_vocab()
    if not vocab or not all(isinstance(piece, bytes) for piece in vocab):
        return None
    table = [b""] * (max(vocab.values()) + 1)
    for piece, token in vocab.items():
        table[token] = piece
    singles = [[token] for token in range(len(table))]
    skipped = tokenizer.decode(singles, skip_special_tokens=True)
    kept = tokenizer.decode(singles, skip_special_tokens=False)
    specials = []
    for token, (without, with_specials) in enumerate(zip(skipped, kept, strict=True)):
        # A lone byte of a multi-byte character decodes to "" both ways; a special token only when skipped.
        if not without and with_specials:
            table[token] = b""
            specials.append(token)
    sample = _sample(tokenizer, table, specials)
    return table if all(decode_utf8(decode_bytes(table, tokens)) == text for tokens, text in sample) else None


def decode_bytes(table: Sequence[bytes], tokens: Sequence[int]) -> bytes:
    """The tokens' bytes; an id beyond the vocabulary (a model's padded embedding rows) stands for nothing."""
    try:
        return b"".join([table[token] for token in tokens])
    except IndexError:
        return b"".join([table[token] if token < len(table) else b"" for token in tokens])


def decode_utf8(data: bytes) -> str:
    """UTF-8 as GenAI's detokenizer reads it: a byte that starts no well-formed sequence is dropped, but a
    well-formed one for a surrogate or a code point beyond U+10FFFF is kept and becomes one U+FFFD per byte."""
    return data.decode("utf-8", _ERRORS)


def complete_length(data: bytes) -> int:
    """How much of `data` ends on a character boundary: the rest is a character whose last bytes are to come."""
    for back in range(1, min(len(data), 4) + 1):
        byte = data[-back]
        if byte < 0x80 or byte >= 0xC0:  # not a continuation byte: ASCII or a lead byte
            return len(data) - back if _sequence_length(byte) > back else len(data)
    return len(data)


def _sequence_length(lead: int) -> int:
    """The length a lead byte announces (0: it starts no sequence)."""
    if 0xC0 <= lead < 0xE0:
        return 2
    if 0xE0 <= lead < 0xF0:
        return 3
    return 4 if 0xF0 <= lead < 0xF8 else 0


# The smallest code point each length may carry (below it: an overlong form, which is dropped).
_SMALLEST = {2: 0x80, 3: 0x800, 4: 0x10000}
_ERRORS = "openarc-genai-utf8"


def _genai_error(error: UnicodeError) -> tuple[str, int]:
    assert isinstance(error, UnicodeDecodeError)
    data, start = error.object, error.start
    length = _sequence_length(data[start])
    sequence = data[start : start + length]
    if length and len(sequence) == length and all(0x80 <= b < 0xC0 for b in sequence[1:]):
        code_point = data[start] & (0x7F >> length)
        for byte in sequence[1:]:
            code_point = code_point << 6 | byte & 0x3F
        if code_point >= _SMALLEST[length]:
            return "\ufffd" * length, start + length
    return "", start + 1


codecs.register_error(_ERRORS, _genai_error)


def _sample(tokenizer: Any, table: list[bytes], specials: list[int]) -> list[tuple[list[int], str]]:
    """Token sequences and the tokenizer's text for each."""
    rng = random.Random(0)
    byte_token = {piece[0]: token for token, piece in enumerate(table) if len(piece) == 1}
    lone_bytes = [token for byte, token in byte_token.items() if byte >= 0x80]
    sequences = []
    for _ in range(_SAMPLE_SEQUENCES):
        sequence = []
        for _ in range(_SAMPLE_LENGTH):
            draw = rng.random()
            pool = specials if draw < 0.1 and specials else lone_bytes if draw < 0.3 and lone_bytes else None
            sequence.append(rng.choice(pool) if pool else rng.randrange(len(table)))
        sequences.append(sequence)
    malformed = [[byte_token[b] for b in run] for run in _MALFORMED if all(b in byte_token for b in run)]
    texts = list(tokenizer.decode(sequences, skip_special_tokens=True))  # equal lengths: a batch pads short ones
    for extra in [*malformed, *([int(t) for t in tokenizer.encode(x).input_ids.data[0]] for x in _SAMPLE_TEXTS)]:
        sequences.append(extra)
        texts.append(tokenizer.decode([extra], skip_special_tokens=True)[0])
    return list(zip(sequences, texts, strict=True))
