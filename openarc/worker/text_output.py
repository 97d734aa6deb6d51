"""A request's output text: incremental detokenization plus exact stop-string handling.

Detokenization is the prefix-window method (as in vLLM): decode a few tokens before the new ones and the
new ones, and emit only the difference, so BPE merges and SentencePiece spaces come out right, and text that
ends in an incomplete UTF-8 sequence (U+FFFD) waits for its next byte. The work per token is constant.
All requests of one engine step are decoded in ONE tokenizer call (`decode_step`): the tokenizer costs
~150 µs a call, so a per-request streamer would spend ~10 ms of every step at 64 sequences. With a byte-level
BPE vocabulary no call is needed: each token's bytes come from a table (see token_bytes.py), decoded as GenAI
decodes them, with the bytes of an incomplete character held back until its last byte comes.

Stop strings are matched on the text, not on tokens: one can begin inside a token, and the text before it
must still reach the client while the stop string never does. The last `len(longest stop) - 1` characters
are held back until they cannot start a stop string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from openarc.worker.token_bytes import complete_length, decode_bytes, decode_utf8

_INCOMPLETE = "\ufffd"


class TextOutput:
    def __init__(
        self, stop: Sequence[str], keep_special_tokens: bool = False, token_bytes: Sequence[bytes] | None = None
    ) -> None:
        # Kept for tool parsers whose markers are special tokens ([TOOL_CALLS], <|python_tag|>).
        self.keep_special_tokens = keep_special_tokens
        # The table leaves special tokens out: text that keeps them is decoded by the tokenizer.
        self._table = None if keep_special_tokens else token_bytes
        # The bytes of a character whose last bytes have not come yet.
        self._partial = b""
        self.tokens: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0
        self._stop = tuple(stop)
        self._keep = max((len(s) for s in self._stop), default=1) - 1
        self._held = ""
        self.stopped = False

    def add_tokens(self, token_ids: Sequence[int]) -> None:
        self.tokens.extend(token_ids)

    @property
    def pending(self) -> bool:
        return self._read_offset < len(self.tokens)

    @property
    def uses_table(self) -> bool:
        return self._table is not None

    def advance_by_table(self, final: bool) -> str:
        """The new tokens' text from the byte table; return the new text that is safe to send."""
        assert self._table is not None
        data = self._partial + decode_bytes(self._table, self.tokens[self._read_offset :])
        self._read_offset = len(self.tokens)
        complete = len(data) if final else complete_length(data)
        self._partial = data[complete:]
        return self._release(decode_utf8(data[:complete]), final)

    def windows(self) -> tuple[list[int], list[int]]:
        """The token windows to decode: with the new tokens, and without them."""
        return self.tokens[self._prefix_offset :], self.tokens[self._prefix_offset : self._read_offset]

    def advance(self, with_new: str, without_new: str, final: bool) -> str:
        """Take the decoded windows; return the new text that is safe to send."""
        if len(with_new) > len(without_new) and (final or not with_new.endswith(_INCOMPLETE)):
            new_text = with_new[len(without_new) :]
            self._prefix_offset, self._read_offset = self._read_offset, len(self.tokens)
        else:
            new_text = ""
        return self._release(new_text, final)

    def _release(self, new_text: str, final: bool) -> str:
        text = self._held + new_text
        if self._stop and new_text:
            cut = min((i for i in (text.find(s) for s in self._stop) if i >= 0), default=-1)
            if cut >= 0:
                self.stopped = True
                self._held = ""
                return text[:cut]
        if final or not self._keep:
            self._held = ""
            return text
        split = max(len(text) - self._keep, 0)
        self._held = text[split:]
        return text[:split]


def decode_step(tokenizer: Any, outputs: Sequence[TextOutput], finals: Sequence[bool]) -> list[str]:
    """The new text of every output: from the byte table, or with one batched decode for all that skip special
    tokens."""
    windows: dict[bool, list[list[int]]] = {False: [], True: []}
    for output in outputs:
        if not output.uses_table:
            windows[output.keep_special_tokens].extend(output.windows())
    texts = {
        False: iter(tokenizer.decode(windows[False], skip_special_tokens=True) if windows[False] else []),
        # One call per window: a batched decode pads short windows, and the padding shows once specials are kept.
        True: iter([tokenizer.decode(w, skip_special_tokens=False) if w else "" for w in windows[True]]),
    }
    results = []
    for output, final in zip(outputs, finals, strict=True):
        if output.uses_table:
            results.append(output.advance_by_table(final))
            continue
        decoded = texts[output.keep_special_tokens]
        with_new, without_new = next(decoded), next(decoded)
        results.append(output.advance(with_new, without_new, final))
    return results
