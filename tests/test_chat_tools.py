"""Tool planning, JSON schema checks and choice output shaping, without an engine."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from openarc.protocol.chat import ChatCompletionRequest
from openarc.serving.chat_output import ChoiceOutput, message_fields
from openarc.serving.chat_tools import plan, render_for_template
from openarc.serving.errors import APIError
from openarc.serving.json_schema import SchemaProblem, check_schema

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
OTHER = {"type": "function", "function": {"name": "get_time"}}
TOOLS_TEMPLATE = "{% if tools %}{{ tools }}{% endif %}"


def request(**fields: Any) -> ChatCompletionRequest:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return msgspec.convert(body, ChatCompletionRequest)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False},
        {"type": "array", "items": {"$ref": "#/$defs/x"}, "$defs": {"x": {"type": "integer", "minimum": 1}}},
        {"anyOf": [{"type": "string", "pattern": "^[a-z]+$"}, {"type": "null"}]},
        # Each compiled by GenAI 2026.4's grammar compiler (probed), next to a refused neighbour below.
        {"type": "array"},
        {"type": "array", "items": {"type": "integer"}, "minItems": 1},
        {"type": "array", "prefixItems": [{"type": "integer"}], "minItems": 2, "items": True},
        {"type": "array", "contains": {"type": "integer"}},
        {"type": "object", "minProperties": 1, "additionalProperties": True},
        {"type": "object", "minProperties": 1, "patternProperties": {"^a": {"type": "integer"}}},
        {"type": "object", "properties": {"a": {"type": "integer"}}, "minProperties": 1},
        {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["b"]},
        {"type": "integer", "minimum": 5, "maximum": 5},
        {"type": "number", "minimum": 5, "exclusiveMaximum": 5},
        {"allOf": [{"type": "object"}, {"required": ["a"]}]},
    ],
)
def test_compilable_schemas_pass(schema: dict[str, Any]) -> None:
    check_schema(schema)


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({"type": "nonsense"}, "not a valid JSON schema"),
        ({"type": "object", "properties": {"a": {"type": "string", "minLength": 5, "maxLength": 2}}}, "no value fits"),
        ({"type": "integer", "minimum": 1.5}, "whole number"),
        ({"properties": {"a": {"$ref": "#/$defs/missing"}}}, "does not point inside"),
        ({"$ref": "https://example.com/schema.json"}, "does not point inside"),
        ({"type": "string", "pattern": "(unclosed"}, "is not a 'regex'"),
        ({"type": "string", "pattern": "^(?=.*[0-9]).{8,}$"}, "has a lookahead"),
        ({"type": "object", "patternProperties": {"\\bx": {"type": "integer"}}}, "patternProperties key"),
        ({"properties": {"a": {"propertyNames": {"pattern": "(?i)a"}}}}, r"\$\.properties\.a\.propertyNames"),
        ({"properties": {"a": False}}, "accepts no value"),
        # Valid JSON Schema, but GenAI 2026.4's grammar compiler fails on them inside the step (probed).
        ({"type": "array", "minItems": 1}, "at least 1 items but allows 0"),
        ({"type": "array", "prefixItems": [{"type": "integer"}], "minItems": 2, "items": False}, "allows 1"),
        ({"type": "array", "prefixItems": [{}, {}], "maxItems": 1}, "maxItems 1 is below the 2 prefixItems"),
        ({"type": "array", "contains": {"type": "integer"}, "minContains": 2}, "at least 2 items"),
        ({"type": "object", "minProperties": 1}, "at least 1 properties but allows 0"),
        ({"type": "object", "properties": {"a": {"type": "integer"}}, "minProperties": 2}, "allows 1"),
        ({"type": "object", "required": ["a", "b"], "maxProperties": 1}, "below the 2 required"),
        ({"type": "object", "propertyNames": {"type": "integer"}}, "propertyNames must describe strings"),
        ({"type": "integer", "minimum": 5, "exclusiveMaximum": 5}, "leave no integer"),
        ({"type": ["integer", "null"], "exclusiveMinimum": 4, "exclusiveMaximum": 5}, "leave no integer"),
        ({"enum": []}, "empty enum"),
        ([1, 2], "must be an object"),
    ],
)
def test_schemas_the_compiler_refuses_are_caught(schema: Any, fragment: str) -> None:
    with pytest.raises(SchemaProblem, match=fragment):
        check_schema(schema)


def test_a_schema_nested_too_deeply_is_a_problem_not_a_crash() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(150):
        schema = {"type": "object", "properties": {"a": schema}}
    with pytest.raises(SchemaProblem, match="nested too deeply"):
        check_schema(schema)


def test_only_a_forced_calls_schema_must_compile() -> None:
    # Valid JSON Schema that the grammar compiler refuses: fine as a tool the model may call, refused when forced.
    strict = {"type": "function", "function": {"name": "tag", "parameters": {"type": "object", "minProperties": 1}}}
    assert plan(request(tools=[strict, TOOL]), "", None).mode == "auto"
    assert (
        plan(
            request(tools=[strict, TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}}),
            "",
            None,
        ).mode
        == "named"
    )
    for choice in ("required", {"type": "function", "function": {"name": "tag"}}):
        with pytest.raises(APIError) as caught:
            plan(request(tools=[strict, TOOL], tool_choice=choice), "", None)
        assert (caught.value.param, caught.value.code) == ("tools[0].function.parameters", "invalid_json_schema")
    # A schema that is not JSON Schema at all is refused either way.
    broken = {"type": "function", "function": {"name": "f", "parameters": {"type": "nonsense"}}}
    with pytest.raises(APIError):
        plan(request(tools=[broken]), "", None)


def test_plan_modes_and_their_constraints() -> None:
    assert plan(request(), "", None).mode == "none"
    auto = plan(request(tools=[TOOL]), TOOLS_TEMPLATE + "<tool_call>", None)
    assert (auto.mode, auto.parser, auto.json_schema) == ("auto", "hermes", None)
    # A template that knows no tools gets them the Hermes way, whatever parser is configured.
    assert plan(request(tools=[TOOL]), "plain", "mistral").parser == "hermes"
    assert plan(request(tools=[TOOL]), TOOLS_TEMPLATE, "mistral").parser == "mistral"

    named = plan(
        request(tools=[TOOL, OTHER], tool_choice={"type": "function", "function": {"name": "get_weather"}}), "", None
    )
    assert (named.mode, named.function, json.loads(named.json_schema or "")) == (
        "named",
        "get_weather",
        {"type": "object"},
    )

    required = plan(request(tools=[TOOL, OTHER], tool_choice="required", parallel_tool_calls=False), "", None)
    schema = json.loads(required.json_schema or "")
    assert schema["maxItems"] == 1 and len(schema["items"]["anyOf"]) == 2
    assert plan(request(tools=[TOOL], tool_choice="none"), "", None).template_tools is None

    fmt = plan(
        request(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array"}}}),
        "",
        None,
    )
    assert json.loads(fmt.json_schema or "") == {"type": "array"}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tool_choice": "auto"}, "tool_choice"),
        (
            {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice.function.name",
        ),
        ({"tools": [TOOL, TOOL]}, "tools[1].function.name"),
        ({"tools": [TOOL], "tool_choice": "required", "response_format": {"type": "json_object"}}, "response_format"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 3}}}},
            "response_format.json_schema.schema",
        ),
    ],
)
def test_plan_refuses_bad_combinations(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(APIError) as caught:
        plan(request(**fields), "", None)
    assert caught.value.status == 400 and caught.value.param == param


def test_templates_without_tools_get_hermes_turns() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"city": "Oslo"}'}}
            ],
        },
        {"role": "tool", "content": "cold", "tool_call_id": "c1"},
        {"role": "tool", "content": "windy", "tool_call_id": "c2"},
    ]
    rendered, tools = render_for_template(messages, [TOOL], "plain template")
    assert tools is None
    assert (
        rendered[0]["role"] == "system"
        and "<tools>" in rendered[0]["content"]
        and "get_weather" in rendered[0]["content"]
    )
    assert rendered[2] == {
        "role": "assistant",
        "content": '<tool_call>\n{"name": "w", "arguments": {"city": "Oslo"}}\n</tool_call>',
    }
    assert rendered[3] == {
        "role": "user",
        "content": "<tool_response>\ncold\n</tool_response>\n<tool_response>\nwindy\n</tool_response>",
    }
    # A template that knows tools gets them as they are, with arguments as objects.
    same, passed = render_for_template(json.loads(json.dumps(messages)), [TOOL], TOOLS_TEMPLATE)
    assert passed == [TOOL] and same[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}


def test_outputs_for_each_mode() -> None:
    named = ChoiceOutput(
        plan(request(tools=[TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}}), "", None),
        None,
        None,
    )
    first, second = named.feed('{"city": '), named.feed('"Oslo"}')
    assert (
        first.calls[0].name == "get_weather"
        and first.calls[0].arguments == ""
        and first.calls[1].arguments == '{"city": '
    )
    assert second.calls[0].arguments == '"Oslo"}' and not named.finish()
    assert [(c.name, c.arguments) for c in named.tool_calls()] == [("get_weather", '{"city": "Oslo"}')]
    assert message_fields(named) == {"content": None}

    required = ChoiceOutput(plan(request(tools=[TOOL, OTHER], tool_choice="required"), "", None), None, None)
    assert not required.feed('[{"name": "get_time", "parameters": {}}, ')
    assert required.feed('{"name": "get_weather", "parameters": {"city": "Rome"}}]') == type(required.finish())()
    assert [(c.name, c.arguments) for c in required.tool_calls()] == [
        ("get_time", "{}"),
        ("get_weather", '{"city": "Rome"}'),
    ]

    cut = ChoiceOutput(plan(request(tools=[TOOL], tool_choice="required"), "", None), None, None)
    cut.feed('[{"name": "get_wea')
    assert cut.finish().content == '[{"name": "get_wea' and not cut.called

    auto = ChoiceOutput(
        plan(request(tools=[TOOL], parallel_tool_calls=False), "", None), "think", "<|im_start|>assistant\n<think>\n"
    )
    auto.feed("pondering</think>Sure. <tool_call>")
    call = '{"name": "get_weather", "arguments": {}}'
    auto.feed(f"{call}</tool_call><tool_call>{call}</tool_call>")
    auto.finish()
    assert len(auto.tool_calls()) == 1
    assert message_fields(auto) == {"content": "Sure. ", "reasoning_content": "pondering"}
