"""Incremental split of a model's output into reasoning (`reasoning_content`) and answer (`content`).

The `think` parser reads DeepSeek-R1 / Qwen3 style `<think>…</think>`. Reasoning comes first: it is recognised only
when the output opens with `<think>` (leading whitespace aside), or when the prompt already opened it
(`start_in_reasoning`; `think_opened_by_prompt` tells from the rendered prompt), so an answer that merely mentions
the tag stays content. Everything after `</think>` is content, a later `<think>` included; an output that never
closes its reasoning is all reasoning. Whitespace around the reasoning and before the answer is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from openarc.serving.tool_parsers import marker_prefix_at_end

_START = "<think>"
_END = "</think>"


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """What one `feed` or `finish` released; within it the reasoning comes before the content."""

    reasoning: str = ""
    content: str = ""


def think_opened_by_prompt(prompt: str) -> bool:
    """Whether a rendered prompt leaves the model inside `<think>` (DeepSeek-R1's template does)."""
    return prompt.rstrip().endswith(_START)


class ThinkReasoningParser:
    """Per-request incremental parser: `feed` each text delta, then `finish` once the output is complete."""

    def __init__(self, *, start_in_reasoning: bool = False) -> None:
        self._start_in_reasoning = start_in_reasoning
        self._state = "start"
        self._buf = ""
        self._reasoning_started = False
        # Trailing whitespace of the reasoning so far: dropped if `</think>` comes next.
        self._reasoning_space = ""
        self._content_started = False

    @classmethod
    def parse(cls, text: str, *, start_in_reasoning: bool = False) -> tuple[str | None, str | None]:
        """Reasoning and content of a whole output (None when empty); the same as streaming it."""
        parser = cls(start_in_reasoning=start_in_reasoning)
        first, last = parser.feed(text), parser.finish()
        return first.reasoning + last.reasoning or None, first.content + last.content or None

    def feed(self, text: str) -> ReasoningDelta:
        self._buf += text
        return self._drain(final=False)

    def finish(self) -> ReasoningDelta:
        return self._drain(final=True)

    def _drain(self, final: bool) -> ReasoningDelta:
        reasoning = content = ""
        if self._state == "start":
            head = self._buf.lstrip()
            if head.startswith(_START):
                # A model may repeat the `<think>` its prompt opened: read past it all the same.
                self._buf = head[len(_START) :]
                self._state = "reasoning"
            elif not final and _START.startswith(head):
                return ReasoningDelta()
            else:
                self._state = "reasoning" if self._start_in_reasoning else "content"
                # An output without reasoning is content exactly as written, leading whitespace included.
                self._content_started = self._state == "content"
        if self._state == "reasoning":
            end = self._buf.find(_END)
            if end != -1:
                reasoning = self._reasoning(self._buf[:end], closing=True)
                self._buf = self._buf[end + len(_END) :]
                self._state = "content"
            else:
                keep = 0 if final else marker_prefix_at_end(self._buf, _END)
                reasoning = self._reasoning(self._buf[: len(self._buf) - keep], closing=final)
                self._buf = self._buf[len(self._buf) - keep :]
        if self._state == "content":
            if not self._content_started:
                self._buf = self._buf.lstrip()
                self._content_started = bool(self._buf)
            content, self._buf = self._buf, ""
        return ReasoningDelta(reasoning, content)

    def _reasoning(self, text: str, closing: bool) -> str:
        if not self._reasoning_started:
            text = text.lstrip()
            self._reasoning_started = bool(text)
        text = self._reasoning_space + text
        released = text.rstrip()
        self._reasoning_space = "" if closing else text[len(released) :]
        return released


REASONING_PARSERS: dict[str, type[ThinkReasoningParser]] = {"think": ThinkReasoningParser}


def default_reasoning_parser(chat_template: str) -> str | None:
    """`think` for templates that know `<think>` (Qwen3, DeepSeek-R1 and their distills), else None."""
    return "think" if _END in chat_template else None
