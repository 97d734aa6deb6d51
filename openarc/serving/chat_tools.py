"""What a chat request's tools, tool_choice and response_format ask of the prompt, the decoder and the output.

- `auto`: the tools go to the chat template and the model's text is read by the model's tool parser.
- `required` / a named function: decoding is constrained to a JSON schema of the call(s) (as vLLM does), so even
  a small model returns a valid call: a named function's output is its arguments object; `required` outputs an
  array of `{"name", "parameters"}` objects (one, if parallel_tool_calls is false).
- `none`: the tools are not shown to the model and nothing is parsed.
- A chat template that knows no tools (no `tools` variable) gets them the Hermes way, as Qwen2.5's template writes
  them: described in the system prompt, earlier calls as `<tool_call>` blocks, results as `<tool_response>` user
  turns; the Hermes parser then reads the output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from openarc.protocol.chat import ChatCompletionRequest, JSONObjectFormat, JSONSchemaFormat, NamedToolChoice, Tool
from openarc.serving.errors import invalid_request
from openarc.serving.json_schema import SchemaProblem, check_schema
from openarc.serving.tool_parsers import default_tool_parser

CallMode = Literal["none", "auto", "required", "named"]
_ANY_OBJECT: dict[str, Any] = {"type": "object"}


@dataclass(frozen=True)
class ToolPlan:
    mode: CallMode
    # For the chat template's `tools` variable (None: not rendered there).
    template_tools: list[dict[str, Any]] | None
    # The JSON schema decoding is constrained to, as JSON text (tools or response_format), or None.
    json_schema: str | None
    # The tool parser for `auto`, and the function a named tool_choice forces.
    parser: str | None = None
    function: str | None = None
    parallel: bool = True


def template_knows_tools(chat_template: str) -> bool:
    return "tools" in chat_template


def _tool_dict(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.function.name}
    if tool.function.description is not None:
        function["description"] = tool.function.description
    function["parameters"] = tool.function.parameters or _ANY_OBJECT
    return {"type": "function", "function": function}


def _checked(schema: Any, param: str, compiled: bool = True) -> dict[str, Any]:
    try:
        check_schema(schema, compiled)
    except SchemaProblem as exc:
        raise invalid_request(f"Invalid schema in `{param}`: {exc}", param, "invalid_json_schema") from None
    assert isinstance(schema, dict)
    return schema


def _response_format_schema(request: ChatCompletionRequest) -> dict[str, Any] | None:
    fmt = request.response_format
    if isinstance(fmt, JSONObjectFormat):
        return _ANY_OBJECT
    if isinstance(fmt, JSONSchemaFormat):
        schema = fmt.json_schema.schema
        return _ANY_OBJECT if schema is None else _checked(schema, "response_format.json_schema.schema")
    return None


def _required_schema(tools: list[Tool], parallel: bool) -> dict[str, Any]:
    calls = [
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": [tool.function.name]},
                "parameters": tool.function.parameters or _ANY_OBJECT,
            },
            "required": ["name", "parameters"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    items = calls[0] if len(calls) == 1 else {"anyOf": calls}
    return {"type": "array", "items": items, "minItems": 1, **({} if parallel else {"maxItems": 1})}


def plan(request: ChatCompletionRequest, chat_template: str, configured_parser: str | None) -> ToolPlan:
    """Check the request's tools and formats (400s naming the field) and decide how to serve them."""
    tools = request.tools or []
    choice = request.tool_choice
    format_schema = _response_format_schema(request)
    if choice is not None and choice != "none" and not tools:
        raise invalid_request("`tool_choice` is only allowed when `tools` are given.", "tool_choice")
    names = [tool.function.name for tool in tools]
    for i, tool in enumerate(tools):
        if names.index(tool.function.name) != i:
            raise invalid_request(f"Tool name {tool.function.name!r} appears twice.", f"tools[{i}].function.name")
    parallel = request.parallel_tool_calls is not False
    mode: CallMode = "auto" if tools else "none"
    if choice == "none":
        mode = "none"
    elif choice == "required":
        mode = "required"
    elif isinstance(choice, NamedToolChoice):
        mode = "named"
        if choice.function.name not in names:
            raise invalid_request(
                f"`tool_choice` names {choice.function.name!r}, which is not one of the tools ({', '.join(names)}).",
                "tool_choice.function.name",
            )
    forced = choice.function.name if isinstance(choice, NamedToolChoice) else None
    for i, tool in enumerate(tools):
        # Only a forced call compiles a tool's schema into a grammar; the others only have to be valid schemas.
        compiled = mode == "required" or tool.function.name == forced
        if tool.function.parameters is not None:
            _checked(tool.function.parameters, f"tools[{i}].function.parameters", compiled)
    if mode in ("required", "named") and format_schema is not None:
        raise invalid_request(
            "`response_format` cannot be combined with a `tool_choice` that forces a call.", "response_format"
        )
    schema: dict[str, Any] | None = format_schema
    function = None
    if mode == "named":
        assert isinstance(choice, NamedToolChoice)
        function = choice.function.name
        schema = next(t.function.parameters for t in tools if t.function.name == function) or _ANY_OBJECT
    elif mode == "required":
        schema = _required_schema(tools, parallel)
    knows_tools = template_knows_tools(chat_template)
    parser = None
    if mode == "auto":
        parser = (configured_parser or default_tool_parser(chat_template) or "hermes") if knows_tools else "hermes"
    return ToolPlan(
        mode=mode,
        template_tools=[_tool_dict(t) for t in tools] if mode != "none" else None,
        json_schema=json.dumps(schema) if schema is not None else None,
        parser=parser,
        function=function,
        parallel=parallel,
    )


_HERMES_TOOLS_PROMPT = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{tools}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> \
XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""


def _arguments(text: str) -> Any:
    """Templates expect a call's arguments as an object; the API carries them as JSON text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, dict) else text


def render_for_template(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, chat_template: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The messages and `tools` to give the template: as they are if it knows tools, else written the Hermes way."""
    if template_knows_tools(chat_template):
        for message in messages:
            for call in message.get("tool_calls") or []:
                call["function"]["arguments"] = _arguments(call["function"]["arguments"])
        return messages, tools
    rendered: list[dict[str, Any]] = []
    for message in messages:
        if message.get("tool_calls"):
            blocks = [
                "<tool_call>\n"
                + json.dumps({"name": c["function"]["name"], "arguments": _arguments(c["function"]["arguments"])})
                + "\n</tool_call>"
                for c in message["tool_calls"]
            ]
            text = "\n".join(([message["content"]] if message["content"] else []) + blocks)
            rendered.append({"role": "assistant", "content": text})
        elif message["role"] == "tool":
            response = f"<tool_response>\n{message['content']}\n</tool_response>"
            # Consecutive results share one user turn, as in Qwen2.5's template.
            if rendered and rendered[-1].get("tool_results"):
                rendered[-1]["content"] += "\n" + response
            else:
                rendered.append({"role": "user", "content": response, "tool_results": True})
        else:
            rendered.append(message)
    for message in rendered:
        message.pop("tool_results", None)
    if tools:
        prompt = _HERMES_TOOLS_PROMPT.format(tools="\n".join(json.dumps(t) for t in tools))
        if rendered and rendered[0]["role"] == "system":
            rendered[0] = {**rendered[0], "content": f"{rendered[0]['content']}\n\n{prompt}"}
        else:
            rendered.insert(0, {"role": "system", "content": prompt})
    return rendered, None
