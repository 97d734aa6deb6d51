"""Incremental parsers that turn a model's generated text into OpenAI tool calls.

A request gets its own parser: `feed` it each text delta as it streams from the engine, then `finish` it. Content
is passed on as soon as it cannot be the start of tool-call markup (a possible marker prefix is held back). A call
is emitted once its block is complete and its JSON parsed, as two deltas: index, id, name and arguments "", then
the arguments, which are `json.dumps(arguments, ensure_ascii=False)` of the parsed object (as vLLM and
mistral-common write them). `parse` runs the same machine over a whole output, so the two always agree.

- A block that does not parse (bad JSON, no name, arguments that are not an object, unclosed at the end) is given
  back verbatim as content, markup included, once its end is seen (at the latest by `finish`), and no call is
  emitted: the client sees what the model wrote.
- Whitespace-only text before, between or after calls is dropped; other text outside calls is content, verbatim.
- Markers must reach the parser as text: the engine has to decode with special tokens kept for `<|python_tag|>`
  and `[TOOL_CALLS]`.
"""

from __future__ import annotations

import abc
import json
import re
import secrets
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, TypeAlias

_ALPHANUMERIC = string.ascii_letters + string.digits


def random_call_id() -> str:
    return "call_" + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(24))


def random_mistral_call_id() -> str:
    # Mistral's chat templates refuse a conversation whose tool call ids are not 9 alphanumeric characters.
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(9))


@dataclass(frozen=True, slots=True)
class ContentDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of call `index` in OpenAI's streaming shape.

    The first delta of a call has `id` and `name` (its type is "function") and empty `arguments`; the following
    ones carry argument fragments whose concatenation is the call's arguments JSON.
    """

    index: int
    arguments: str
    id: str | None = None
    name: str | None = None


ToolEvent: TypeAlias = ContentDelta | ToolCallDelta


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str


def collect(events: Iterable[ToolEvent]) -> tuple[str | None, list[ToolCall]]:
    """The non-streaming result of a stream of events: content (None when empty) and the calls in index order."""
    content: list[str] = []
    calls: dict[int, tuple[str, str, list[str]]] = {}
    for event in events:
        if isinstance(event, ContentDelta):
            content.append(event.text)
        elif event.id is not None and event.name is not None:
            calls[event.index] = (event.id, event.name, [event.arguments])
        else:
            calls[event.index][2].append(event.arguments)
    tool_calls = [ToolCall(call_id, name, "".join(parts)) for call_id, name, parts in (calls[i] for i in sorted(calls))]
    return "".join(content) or None, tool_calls


class _BlockEnd(NamedTuple):
    # Characters of the buffer the block took, end marker included.
    consumed: int
    # (name, arguments JSON) of each call; None when the block is not a valid call.
    calls: list[tuple[str, str]] | None


class _JsonSpan:
    """Finds where the JSON object or array starting at `start` ends, reading each character once across feeds."""

    def __init__(self, start: int) -> None:
        self.start = start
        self._pos = start
        self._depth = 0
        self._in_string = False
        self._escaped = False

    def end(self, text: str) -> int | None:
        for i in range(self._pos, len(text)):
            char = text[i]
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
            elif char in "}]":
                self._depth -= 1
                if self._depth == 0:
                    self._pos = i + 1
                    return i + 1
        self._pos = len(text)
        return None


_MALFORMED = object()


def _reject_constant(name: str) -> Any:
    # json.loads accepts NaN and Infinity, which would make the re-encoded arguments invalid JSON.
    raise ValueError(name)


def _load(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return _MALFORMED


def _call(obj: Any, argument_keys: tuple[str, ...], arguments_required: bool) -> tuple[str, str] | None:
    """(name, arguments JSON) of a `{"name": ..., "arguments": {...}}` object, or None if it is not one."""
    if not isinstance(obj, dict):
        return None
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return None
    key = next((key for key in argument_keys if key in obj), None)
    if key is None and arguments_required:
        return None
    arguments = obj[key] if key is not None else {}
    if isinstance(arguments, str):
        # Some fine-tunes write the arguments object as a JSON string, the way OpenAI sends it.
        arguments = _load(arguments)
    if not isinstance(arguments, dict):
        return None
    return name, json.dumps(arguments, ensure_ascii=False)


def _calls(value: Any, argument_keys: tuple[str, ...] = ("arguments", "parameters")) -> list[tuple[str, str]] | None:
    """The calls of one object or a non-empty array of them; None unless every one is valid."""
    objects = value if isinstance(value, list) else [value]
    calls = [_call(obj, argument_keys, arguments_required=False) for obj in objects]
    if not calls or None in calls:
        return None
    return [call for call in calls if call is not None]


def marker_prefix_at_end(text: str, marker: str) -> int:
    """Length of the longest end of `text` that is a proper prefix of `marker`."""
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:size]):
            return size
    return 0


class ToolParser(abc.ABC):
    """Per-request incremental parser: `feed` each text delta, then `finish` once the output is complete."""

    # Markup that opens a call block anywhere in the text.
    start_markers: ClassVar[tuple[str, ...]]
    # What may stand between calls without being content.
    separators: ClassVar[str] = " \t\r\n"

    def __init__(self, make_id: Callable[[], str] | None = None) -> None:
        self._make_id = make_id or self._default_id
        self._buf = ""
        self._in_block = False
        # The marker and the separators before it, given back as content if the block does not parse.
        self._block_prefix = ""
        # Separators opening a text segment: dropped when a call is next to them.
        self._held = ""
        # A segment starts at the output's start and after each valid call; text in it ends the holding.
        self._segment_has_text = False
        self._call_count = 0

    @classmethod
    def parse(cls, text: str, make_id: Callable[[], str] | None = None) -> tuple[str | None, list[ToolCall]]:
        """Content (None when empty) and tool calls of a whole output; the same as streaming it."""
        parser = cls(make_id)
        return collect([*parser.feed(text), *parser.finish()])

    def feed(self, text: str) -> list[ToolEvent]:
        self._buf += text
        return self._drain(final=False)

    def finish(self) -> list[ToolEvent]:
        events = self._drain(final=True)
        if self._held and not self._call_count:
            _add_content(events, self._held)
        self._held = ""
        return events

    def _default_id(self) -> str:
        return random_call_id()

    @abc.abstractmethod
    def _block_end(self, buf: str, final: bool) -> _BlockEnd | None:
        """Where the block at the start of `buf` (just after its marker) ends; None while it may go on."""

    @abc.abstractmethod
    def _open_block(self) -> None:
        """Reset the per-block scanning state."""

    def _find_start(self, buf: str) -> tuple[int, int] | None:
        """Position and length of the first marker in `buf`."""
        found = [(i, len(marker)) for marker in self.start_markers if (i := buf.find(marker)) != -1]
        return min(found) if found else None

    def _drain(self, final: bool) -> list[ToolEvent]:
        events: list[ToolEvent] = []
        while self._close_block(events, final) if self._in_block else self._open(events, final):
            pass
        return events

    def _open(self, events: list[ToolEvent], final: bool) -> bool:
        found = self._find_start(self._buf)
        if found is None:
            keep = 0 if final else max(marker_prefix_at_end(self._buf, marker) for marker in self.start_markers)
            self._text(events, self._buf[: len(self._buf) - keep])
            self._buf = self._buf[len(self._buf) - keep :]
            return False
        start, length = found
        self._text(events, self._buf[:start])
        self._block_prefix = self._held + self._buf[start : start + length]
        self._held = ""
        self._buf = self._buf[start + length :]
        self._in_block = True
        self._open_block()
        return True

    def _close_block(self, events: list[ToolEvent], final: bool) -> bool:
        end = self._block_end(self._buf, final)
        if end is None:
            if not final:
                return False
            end = _BlockEnd(len(self._buf), None)
        raw = self._block_prefix + self._buf[: end.consumed]
        self._buf = self._buf[end.consumed :]
        self._in_block = False
        if end.calls is None:
            _add_content(events, raw)
            self._segment_has_text = True
            return True
        for name, arguments in end.calls:
            events.append(ToolCallDelta(self._call_count, "", id=self._make_id(), name=name))
            events.append(ToolCallDelta(self._call_count, arguments))
            self._call_count += 1
        self._segment_has_text = False
        return True

    def _text(self, events: list[ToolEvent], text: str) -> None:
        if not text:
            return
        if not self._segment_has_text:
            if not text.strip(self.separators):
                self._held += text
                return
            text = self._held + text
            self._held = ""
            self._segment_has_text = True
        _add_content(events, text)


def _add_content(events: list[ToolEvent], text: str) -> None:
    if events and isinstance(last := events[-1], ContentDelta):
        events[-1] = ContentDelta(last.text + text)
    elif text:
        events.append(ContentDelta(text))


class HermesToolParser(ToolParser):
    """`<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`, once per call (Hermes 2 Pro, Qwen 2.5/3).

    A block left open at the end of the output is still a call if its JSON is complete, as in vLLM.
    """

    start_markers = ("<tool_call>",)
    _end_marker = "</tool_call>"

    def _open_block(self) -> None:
        self._searched = 0

    def _block_end(self, buf: str, final: bool) -> _BlockEnd | None:
        end = buf.find(self._end_marker, self._searched)
        if end != -1:
            return _BlockEnd(end + len(self._end_marker), _calls(_load(buf[:end])))
        if not final:
            self._searched = max(0, len(buf) - len(self._end_marker) + 1)
            return None
        body = buf[: len(buf) - marker_prefix_at_end(buf, self._end_marker)]
        return _BlockEnd(len(buf), _calls(_load(body)))


class Llama3JsonToolParser(ToolParser):
    """Llama 3.x JSON calls: the output is `{"name": ..., "parameters": {...}}` (or "arguments"), several joined
    by `;`, optionally after `<|python_tag|>`.

    Without the tag a call must open the output or follow another call, so a `{` inside prose stays content; a
    JSON object that is not a call (e.g. a JSON answer) is content too.
    """

    start_markers = ("<|python_tag|>",)
    separators = " \t\r\n;"

    def _open_block(self) -> None:
        self._span: _JsonSpan | None = None

    def _find_start(self, buf: str) -> tuple[int, int] | None:
        found = super()._find_start(buf)
        if not self._segment_has_text:
            first = len(buf) - len(buf.lstrip(self.separators))
            if buf[first : first + 1] == "{" and (found is None or first < found[0]):
                return first, 0
        return found

    def _block_end(self, buf: str, final: bool) -> _BlockEnd | None:
        if self._span is None:
            first = len(buf) - len(buf.lstrip())
            if first == len(buf):
                return None
            if buf[first] != "{":
                # `<|python_tag|>` before code (Llama's built-in tools): the tag goes back as content.
                return _BlockEnd(0, None)
            self._span = _JsonSpan(first)
        end = self._span.end(buf)
        if end is None:
            return None
        call = _call(_load(buf[self._span.start : end]), ("parameters", "arguments"), arguments_required=True)
        return _BlockEnd(end, None if call is None else [call])


class MistralToolParser(ToolParser):
    """Mistral's `[TOOL_CALLS]`, followed by a JSON array of `{"name": ..., "arguments": {...}}` (tokenizers before
    v11, e.g. Mistral 7B v0.3, Nemo) or by `name[ARGS]{...}` per call (v13; v11 puts `[CALL_ID]id` before `[ARGS]`).
    """

    start_markers = ("[TOOL_CALLS]",)
    _name = re.compile(r"(?P<name>[^\s\[\]{}]+)\s*(?:\[CALL_ID\]\s*[A-Za-z0-9]*\s*)?(?:\[ARGS\])?\s*")

    def _default_id(self) -> str:
        return random_mistral_call_id()

    def _open_block(self) -> None:
        self._span: _JsonSpan | None = None
        self._function: str | None = None

    def _block_end(self, buf: str, final: bool) -> _BlockEnd | None:
        if self._span is None:
            first = len(buf) - len(buf.lstrip())
            if first == len(buf):
                return None
            if buf[first] in "[{":
                self._span = _JsonSpan(first)
            else:
                brace = buf.find("{", first)
                if brace == -1:
                    return None
                name = self._name.fullmatch(buf, first, brace)
                if name is None:
                    return _BlockEnd(brace, None)
                self._function = name["name"]
                self._span = _JsonSpan(brace)
        end = self._span.end(buf)
        if end is None:
            return None
        value = _load(buf[self._span.start : end])
        if self._function is not None:
            value = {"name": self._function, "arguments": value}
        return _BlockEnd(end, _calls(value, ("arguments",)))


TOOL_PARSERS: dict[str, type[ToolParser]] = {
    "hermes": HermesToolParser,
    "qwen": HermesToolParser,
    "llama3_json": Llama3JsonToolParser,
    "mistral": MistralToolParser,
}


def default_tool_parser(chat_template: str) -> str | None:
    """The parser for the call format a chat template teaches, judged by its markers; None if none fits."""
    if "[TOOL_CALLS]" in chat_template:
        return "mistral"
    if "<tool_call>" in chat_template:
        # Qwen3-Coder wraps XML calls (`<function=name><parameter=...>`) in <tool_call>: not JSON, not ours.
        return None if "<function=" in chat_template else "hermes"
    if "<|python_tag|>" in chat_template or "ipython" in chat_template:
        return "llama3_json"
    return None
