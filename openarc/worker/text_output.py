"""A request's output text: incremental detokenization plus exact stop-string handling.

GenAI's `TextStreamer` turns token ids into text in O(1) per token and holds back incomplete UTF-8,
so no U+FFFD reaches a client. Stop strings are matched on that text, not on tokens: a stop string can
begin inside a token, and the text before it must still reach the client while the stop string never
does. The last `len(longest stop) - 1` characters are held back until they cannot start a stop string.
"""

from __future__ import annotations

from collections.abc import Sequence

import openvino_genai


class TextOutput:
    def __init__(self, tokenizer: openvino_genai.Tokenizer, stop: Sequence[str]) -> None:
        self._pieces: list[str] = []
        self._streamer = openvino_genai.TextStreamer(tokenizer, self._collect)
        self._stop = tuple(stop)
        self._keep = max((len(s) for s in self._stop), default=1) - 1
        self._held = ""
        self.stopped = False

    def _collect(self, text: str) -> bool:
        self._pieces.append(text)
        return False  # False: keep generating; stopping is the loop's decision.

    def write(self, token_ids: Sequence[int]) -> None:
        self._streamer.write(list(token_ids))

    def take(self, final: bool) -> str:
        """New text that is safe to send; with `final`, flush everything (the request has ended)."""
        if final:
            self._streamer.end()
        if not self._pieces:
            if final and self._held:
                text, self._held = self._held, ""
                return text
            return ""
        text = self._held + "".join(self._pieces)
        self._pieces.clear()
        if self._stop:
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
