"""Tool-call parsers on canned outputs in each family's real format, streamed at every split point."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from openarc.serving.reasoning_parsers import ThinkReasoningParser
from openarc.serving.tool_parsers import (
    TOOL_PARSERS,
    ContentDelta,
    HermesToolParser,
    MistralToolParser,
    ToolCall,
    ToolCallDelta,
    ToolEvent,
    collect,
    default_tool_parser,
    random_call_id,
    random_mistral_call_id,
)

WEATHER = {"location": "San Francisco, CA", "unit": "celsius"}
TIME = {"timezone": "Europe/Zürich"}


def counting_ids() -> Callable[[], str]:
    count = itertools.count()
    return lambda: f"call_{next(count)}"


def arguments(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False)


def calls(*pairs: tuple[str, dict[str, Any]]) -> list[ToolCall]:
    return [ToolCall(f"call_{i}", name, arguments(args)) for i, (name, args) in enumerate(pairs)]


def parse(parser: str, text: str) -> tuple[str | None, list[ToolCall]]:
    return TOOL_PARSERS[parser].parse(text, counting_ids())


def stream(parser: str, chunks: list[str]) -> list[ToolEvent]:
    instance = TOOL_PARSERS[parser](counting_ids())
    events = [event for chunk in chunks for event in instance.feed(chunk)]
    return events + instance.finish()


def assert_openai_shape(events: list[ToolEvent]) -> None:
    """Call i opens with index i, id, name and arguments ""; later deltas of a call carry only arguments."""
    opened: set[int] = set()
    for event in events:
        if isinstance(event, ToolCallDelta):
            if event.index in opened:
                assert event.id is None and event.name is None
            else:
                assert event.index == len(opened) and event.id and event.name and event.arguments == ""
                opened.add(event.index)


HERMES_ONE = (
    '<tool_call>\n{"name": "get_weather", "arguments": {"location": "San Francisco, CA", "unit": "celsius"}}\n'
    "</tool_call>"
)
HERMES_TWO = (
    HERMES_ONE + '\n<tool_call>\n{"name": "get_time", "arguments": {"timezone": "Europe/Zürich"}}\n</tool_call>'
)
LLAMA_ONE = '{"name": "get_weather", "parameters": {"location": "San Francisco, CA", "unit": "celsius"}}'
LLAMA_TWO = LLAMA_ONE + '; {"name": "get_time", "parameters": {"timezone": "Europe/Zürich"}}'
MISTRAL_ARRAY = (
    '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"location": "San Francisco, CA", "unit": "celsius"}}, '
    '{"name": "get_time", "arguments": {"timezone": "Europe/Zürich"}}]'
)
MISTRAL_ARGS = (
    '[TOOL_CALLS]get_weather[ARGS]{"location": "San Francisco, CA", "unit": "celsius"}'
    '[TOOL_CALLS]get_time[ARGS]{"timezone": "Europe/Zürich"}'
)

# (parser, output, content, calls) in each family's real format.
CASES: list[tuple[str, str, str | None, list[ToolCall]]] = [
    ("hermes", HERMES_ONE, None, calls(("get_weather", WEATHER))),
    ("hermes", HERMES_TWO, None, calls(("get_weather", WEATHER), ("get_time", TIME))),
    ("hermes", "Let me check.\n\n" + HERMES_ONE + "\n", "Let me check.\n\n", calls(("get_weather", WEATHER))),
    # Stopped on the end-of-turn token before `</tool_call>`: the JSON is complete, so it is a call (as in vLLM).
    ("hermes", HERMES_ONE.removesuffix("</tool_call>"), None, calls(("get_weather", WEATHER))),
    ("hermes", HERMES_ONE + "\nDone.", "\nDone.", calls(("get_weather", WEATHER))),
    (
        "qwen",
        '<tool_call>\n{"name": "ping", "arguments": "{\\"n\\": 1}"}\n</tool_call>',
        None,
        calls(("ping", {"n": 1})),
    ),
    ("llama3_json", LLAMA_ONE, None, calls(("get_weather", WEATHER))),
    ("llama3_json", LLAMA_TWO, None, calls(("get_weather", WEATHER), ("get_time", TIME))),
    ("llama3_json", "<|python_tag|>" + LLAMA_ONE, None, calls(("get_weather", WEATHER))),
    ("llama3_json", "Checking.<|python_tag|>" + LLAMA_ONE, "Checking.", calls(("get_weather", WEATHER))),
    ("llama3_json", "\n\n" + LLAMA_ONE + ";", None, calls(("get_weather", WEATHER))),
    ("mistral", MISTRAL_ARRAY, None, calls(("get_weather", WEATHER), ("get_time", TIME))),
    ("mistral", MISTRAL_ARGS, None, calls(("get_weather", WEATHER), ("get_time", TIME))),
    (
        "mistral",
        "Sure.[TOOL_CALLS]get_time[CALL_ID]a1B2c3D4e[ARGS]" + arguments(TIME),
        "Sure.",
        calls(("get_time", TIME)),
    ),
]

MALFORMED: list[tuple[str, str]] = [
    ("hermes", '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}\n</tool_call>'),
    ("hermes", 'Sure.\n<tool_call>\n{"arguments": {"location": "Paris"}}\n</tool_call>'),
    ("hermes", '<tool_call>\n{"name": "f", "arguments": [1, 2]}\n</tool_call>'),
    ("hermes", '<tool_call>\n{"name": "f", "arguments": {"x": NaN}}\n</tool_call>'),
    ("hermes", '<tool_call>\n{"name": "get_weather", "arguments": {"loc'),
    ("llama3_json", '{"name": "get_weather", "parameters": {"location": "Paris"}'),
    ("llama3_json", '<|python_tag|>brave_search.call(query="weather in Paris")'),
    ("mistral", '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"location": "Paris"}'),
    ("mistral", "[TOOL_CALLS]get_weather[ARGS]{'location': 'Paris'}"),
]

PLAIN: list[tuple[str, str]] = [
    ("hermes", "If a < b and c<d, then <b>bold</b>, <tool_call_id> and a stray </tool_call> are text. <tool_"),
    ("hermes", "\n"),
    ("hermes", ""),
    ("llama3_json", 'Use {"name": "x"} like this: a < b <|python'),
    # A JSON answer is not a call: it has no name and no parameters.
    ("llama3_json", '{"answer": 42, "unit": "m"}\n'),
    ("llama3_json", '{"name": "Ada", "age": 36}'),
    ("mistral", "Arrays like [1, 2], [TOOL] and [TOOL_CALL are text ["),
]


@pytest.mark.parametrize(("parser", "text", "content", "expected"), CASES)
def test_calls_in_real_formats(parser: str, text: str, content: str | None, expected: list[ToolCall]) -> None:
    assert parse(parser, text) == (content, expected)


@pytest.mark.parametrize(("parser", "text"), MALFORMED)
def test_malformed_call_is_given_back_as_content(parser: str, text: str) -> None:
    assert parse(parser, text) == (text, [])


@pytest.mark.parametrize(("parser", "text"), PLAIN)
def test_text_without_calls_passes_through_unchanged(parser: str, text: str) -> None:
    assert parse(parser, text) == (text or None, [])


@pytest.mark.parametrize(("parser", "text"), [(case[0], case[1]) for case in CASES] + MALFORMED + PLAIN)
def test_every_split_streams_like_parse(parser: str, text: str) -> None:
    expected = parse(parser, text)
    for split in range(len(text) + 1):
        events = stream(parser, [text[:split], text[split:]])
        assert_openai_shape(events)
        assert collect(events) == expected, f"split at {split}: {text[:split]!r} | {text[split:]!r}"
    events = stream(parser, list(text))
    assert_openai_shape(events)
    assert collect(events) == expected


def test_call_is_emitted_when_its_block_closes() -> None:
    parser = HermesToolParser(counting_ids())
    assert parser.feed("Let me check.\n<tool_call>\n") == [ContentDelta("Let me check.\n")]
    assert parser.feed('{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool') == []
    assert parser.feed("_call>") == [
        ToolCallDelta(0, "", id="call_0", name="get_weather"),
        ToolCallDelta(0, '{"location": "Paris"}'),
    ]
    assert parser.feed("\n") == []
    assert parser.finish() == []


def test_only_a_possible_marker_prefix_is_held_back() -> None:
    parser = HermesToolParser()
    assert parser.feed("a < b, see <tool") == [ContentDelta("a < b, see ")]
    assert parser.feed("box>") == [ContentDelta("<toolbox>")]
    assert parser.feed(" <tool_call") == [ContentDelta(" ")]
    assert parser.finish() == [ContentDelta("<tool_call")]


def test_text_split_over_many_feeds_streams_promptly() -> None:
    parser = MistralToolParser()
    assert [parser.feed(piece) for piece in ("The", " answer", " is 4.")] == [
        [ContentDelta("The")],
        [ContentDelta(" answer")],
        [ContentDelta(" is 4.")],
    ]
    assert parser.finish() == []


def test_ids_are_random_in_each_familys_shape() -> None:
    assert re.fullmatch(r"call_[A-Za-z0-9]{24}", random_call_id())
    assert re.fullmatch(r"[A-Za-z0-9]{9}", random_mistral_call_id())
    assert random_call_id() != random_call_id()
    _, (hermes_call,) = HermesToolParser.parse(HERMES_ONE)
    assert re.fullmatch(r"call_[A-Za-z0-9]{24}", hermes_call.id)
    _, (mistral_call, _) = MistralToolParser.parse(MISTRAL_ARGS)
    assert re.fullmatch(r"[A-Za-z0-9]{9}", mistral_call.id)


def test_reasoning_then_tool_call_through_both_parsers() -> None:
    text = "<think>\nThe user wants the weather.\n</think>\n\n" + HERMES_ONE
    for split in range(len(text) + 1):
        reasoner, tools = ThinkReasoningParser(), HermesToolParser(counting_ids())
        reasoning, events = "", []
        for delta in (*(reasoner.feed(chunk) for chunk in (text[:split], text[split:])), reasoner.finish()):
            reasoning += delta.reasoning
            events += tools.feed(delta.content)
        events += tools.finish()
        assert reasoning == "The user wants the weather."
        assert collect(events) == (None, calls(("get_weather", WEATHER)))


@pytest.mark.parametrize(
    ("template", "parser"),
    [
        # Excerpts of the models' own chat templates.
        (
            "function signatures within <tools></tools> XML tags ... within <tool_call></tool_call> XML tags:\n"
            '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>',
            "hermes",
        ),
        ('{{- "Environment: ipython\\n" }} ... {{- "<|python_tag|>" + tool_call.name + ".call(" }}', "llama3_json"),
        ('{{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}', "llama3_json"),
        ('{{- "[TOOL_CALLS] [" }}{%- for tool_call in message.tool_calls %}', "mistral"),
        ("{{- '[TOOL_CALLS]' + tool_call.function.name + '[ARGS]' + arguments }}", "mistral"),
        ("<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>", None),
        ("{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>", None),
    ],
)
def test_default_parser_from_chat_template(template: str, parser: str | None) -> None:
    assert default_tool_parser(template) == parser
