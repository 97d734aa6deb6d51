"""One chat choice's generated text → reasoning, content and tool calls, streamed or whole.

Text flows through the reasoning parser (if the model has one) and then, for the answer part, through the call
reader the request's ToolPlan chose: the model's tool parser (`auto`), the forced function's arguments (`named`),
or the constrained array of calls (`required`). Both the streaming and the non-streaming response are built from
the same deltas, so they always agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from openarc.serving.chat_tools import ToolPlan
from openarc.serving.reasoning_parsers import (
    REASONING_PARSERS,
    ReasoningDelta,
    ThinkReasoningParser,
    think_opened_by_prompt,
)
from openarc.serving.tool_parsers import TOOL_PARSERS, ContentDelta, ToolCall, ToolCallDelta, ToolEvent, random_call_id


class CallReader(Protocol):
    def feed(self, text: str) -> list[ToolEvent]: ...

    def finish(self) -> list[ToolEvent]: ...


class NamedCall:
    """Under a named tool_choice the constrained output is the call's arguments: stream it as they come."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._opened = False

    def feed(self, text: str) -> list[ToolEvent]:
        events: list[ToolEvent] = []
        if not self._opened:
            self._opened = True
            events.append(ToolCallDelta(0, "", random_call_id(), self._name))
        if text:
            events.append(ToolCallDelta(0, text))
        return events

    def finish(self) -> list[ToolEvent]:
        return self.feed("") if not self._opened else []


class RequiredCalls:
    """Under `required` the constrained output is a JSON array of {"name", "parameters"}: read it whole."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def feed(self, text: str) -> list[ToolEvent]:
        self._parts.append(text)
        return []

    def finish(self) -> list[ToolEvent]:
        text = "".join(self._parts)
        try:
            calls = json.loads(text)
        except ValueError:
            calls = None
        if not isinstance(calls, list) or not all(isinstance(c, dict) and "name" in c for c in calls):
            # Cut short (max_tokens): what the model wrote goes back as content.
            return [ContentDelta(text)] if text else []
        events: list[ToolEvent] = []
        for index, call in enumerate(calls):
            events.append(ToolCallDelta(index, "", random_call_id(), str(call["name"])))
            events.append(ToolCallDelta(index, json.dumps(call.get("parameters", {}), ensure_ascii=False)))
        return events


@dataclass
class OutputDelta:
    content: str = ""
    reasoning: str = ""
    calls: list[ToolCallDelta] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.content or self.reasoning or self.calls)


def _reader(plan: ToolPlan) -> CallReader | None:
    if plan.mode == "auto" and plan.parser is not None:
        return TOOL_PARSERS[plan.parser]()
    if plan.mode == "named" and plan.function is not None:
        return NamedCall(plan.function)
    if plan.mode == "required":
        return RequiredCalls()
    return None


class ChoiceOutput:
    def __init__(self, plan: ToolPlan, reasoning_parser: str | None, prompt_tail: str | None) -> None:
        self._calls = _reader(plan)
        self._single_call = not plan.parallel
        # A constrained output is all answer: there is no room for reasoning in it.
        self.has_reasoning = reasoning_parser is not None and plan.json_schema is None
        self._reasoning: ThinkReasoningParser | None = None
        if self.has_reasoning and reasoning_parser is not None:
            opened = prompt_tail is not None and think_opened_by_prompt(prompt_tail)
            self._reasoning = REASONING_PARSERS[reasoning_parser](start_in_reasoning=opened)
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self._calls_by_index: dict[int, list[str]] = {}
        self._call_heads: dict[int, tuple[str, str]] = {}

    @property
    def called(self) -> bool:
        return bool(self._call_heads)

    @property
    def plain(self) -> bool:
        """Text passes through untouched (the fast streaming path applies)."""
        return self._calls is None and self._reasoning is None

    def feed(self, text: str) -> OutputDelta:
        return self._shape(text, final=False)

    def finish(self) -> OutputDelta:
        return self._shape("", final=True)

    def _shape(self, text: str, final: bool) -> OutputDelta:
        delta = OutputDelta()
        answer = text
        if self._reasoning is not None:
            split = self._reasoning.feed(text) if text else ReasoningDelta()
            if final:
                last = self._reasoning.finish()
                split = ReasoningDelta(split.reasoning + last.reasoning, split.content + last.content)
            delta.reasoning, answer = split.reasoning, split.content
        if self._calls is None:
            delta.content = answer
        else:
            events = self._calls.feed(answer) if answer else []
            if final:
                events += self._calls.finish()
            for event in events:
                if isinstance(event, ContentDelta):
                    delta.content += event.text
                elif not (self._single_call and event.index > 0):
                    delta.calls.append(event)
        self._record(delta)
        return delta

    def _record(self, delta: OutputDelta) -> None:
        if delta.content:
            self.content.append(delta.content)
        if delta.reasoning:
            self.reasoning.append(delta.reasoning)
        for call in delta.calls:
            if call.id is not None and call.name is not None:
                self._call_heads[call.index] = (call.id, call.name)
            self._calls_by_index.setdefault(call.index, []).append(call.arguments)

    def tool_calls(self) -> list[ToolCall]:
        return [ToolCall(*self._call_heads[i], "".join(self._calls_by_index[i])) for i in sorted(self._call_heads)]


def message_fields(output: ChoiceOutput) -> dict[str, Any]:
    """The non-streamed message's content, reasoning_content and tool calls, as ChatMessage keywords."""
    content = "".join(output.content)
    fields: dict[str, Any] = {"content": content if content or not output.called else None}
    if output.has_reasoning:
        fields["reasoning_content"] = "".join(output.reasoning) or None
    return fields
