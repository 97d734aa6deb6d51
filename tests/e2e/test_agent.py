"""Agent features against real SmolLM2 workers: tool calls, structured output, reasoning, logprobs, seeds and
speculative decoding, all through the official `openai` client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest

from tests.server import Server, run_server, write_config

WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 40},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": WEATHER_SCHEMA},
}
TIME_TOOL: Any = {
    "type": "function",
    "function": {"name": "get_time", "description": "Local time in a city", "parameters": {"type": "object"}},
}
ASK: Any = [{"role": "user", "content": "What is the weather like in Paris right now?"}]
PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 30},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "city": {"type": "string", "maxLength": 30},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}
# Qwen3's switch: the prompt opens <think> unless the caller turns thinking off.
THINK_TEMPLATE = (
    "{% if tools %}<|im_start|>system\nTools: {{ tools | tojson }}<|im_end|>\n{% endif %}"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% else %}<think>\n"
    "{% endif %}{% endif %}"
)


@pytest.fixture(scope="module")
def agents(smollm2_gguf: Path, smollm2_ir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("agents")
    models: list[dict[str, Any]] = [
        {"id": "smollm2", "source": str(smollm2_gguf)},
        {"id": "smollm2-draft", "source": str(smollm2_ir), "speculative": {"draft": str(smollm2_ir)}},
        {"id": "smollm2-lookup", "source": str(smollm2_gguf), "speculative": {"prompt_lookup": True}},
        # Its template renders tools itself, so the configured parser reads them (keeping special tokens).
        {
            "id": "smollm2-think",
            "source": str(smollm2_gguf),
            "chat_template": THINK_TEMPLATE,
            "tool_parser": "llama3_json",
        },
    ]
    with run_server(write_config(tmp / "config.yaml", models), tmp) as server:
        yield server


def streamed_calls(stream: Any) -> tuple[list[dict[str, str]], str | None, str]:
    """Reassemble streamed tool-call deltas as OpenAI documents it; also the finish reason and any content."""
    calls: dict[int, dict[str, str]] = {}
    finish, content = None, ""
    for chunk in stream:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                if delta.id:
                    assert not call["id"], "a call's id comes once, in its first delta"
                    call["id"] = delta.id
                    assert delta.type == "function"
                if delta.function and delta.function.name:
                    call["name"] += delta.function.name
                if delta.function and delta.function.arguments:
                    call["arguments"] += delta.function.arguments
            finish = choice.finish_reason or finish
    return [calls[i] for i in sorted(calls)], finish, content


@pytest.mark.parametrize(
    "tool_choice", ["required", {"type": "function", "function": {"name": "get_weather"}}], ids=["required", "named"]
)
def test_forced_tool_call_is_valid_streamed_or_not_and_the_result_turn_answers(
    agents: Server, tool_choice: Any
) -> None:
    client = agents.client()
    tools = [WEATHER_TOOL, TIME_TOOL] if tool_choice == "required" else [WEATHER_TOOL]
    kwargs: Any = {"model": "smollm2", "messages": ASK, "tools": tools, "tool_choice": tool_choice}
    if tool_choice == "required":
        kwargs["parallel_tool_calls"] = False
    response = client.chat.completions.create(**kwargs, temperature=0, max_tokens=80)
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call: Any = choice.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    if tool_choice != "required":
        assert call.function.name == "get_weather"
    if call.function.name == "get_weather":
        jsonschema.validate(json.loads(call.function.arguments), WEATHER_SCHEMA)
    else:
        assert isinstance(json.loads(call.function.arguments), dict)

    calls, finish, content = streamed_calls(
        client.chat.completions.create(**kwargs, temperature=0, max_tokens=80, stream=True)
    )
    assert finish == "tool_calls"
    assert content == ""
    assert [(c["name"], c["arguments"]) for c in calls] == [(call.function.name, call.function.arguments)]
    assert calls[0]["id"].startswith("call_")

    # Second turn: the call and its result go back; the model answers in text.
    result = json.dumps({"temperature": 18, "unit": "celsius", "sky": "sunny"})
    follow_up: Any = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]},
        {"role": "tool", "tool_call_id": call.id, "content": result},
    ]
    answer = client.chat.completions.create(
        model="smollm2", messages=follow_up, tools=tools, max_tokens=40, temperature=0
    )
    assert answer.choices[0].message.content
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage is not None and response.usage is not None
    # The call and the result were rendered into the prompt.
    assert answer.usage.prompt_tokens > response.usage.prompt_tokens + 20


def test_auto_tool_choice_parses_the_models_own_call_streamed_or_not(agents: Server) -> None:
    # Three earlier calls teach SmolLM2 the Hermes format it is shown: greedy, it writes a <tool_call> block itself.
    history: Any = []
    for i, city in enumerate(("Paris", "Oslo", "Lima")):
        arguments = json.dumps({"city": city, "unit": "celsius"})
        call = {"id": f"call_{i}", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
        history += [{"role": "user", "content": f"Weather in {city}?"}, {"role": "assistant", "tool_calls": [call]}]
    history.append({"role": "user", "content": "Weather in Rome?"})
    kwargs: Any = {"model": "smollm2", "messages": history, "tools": [WEATHER_TOOL], "max_tokens": 60, "temperature": 0}
    client = agents.client()
    choice: Any = client.chat.completions.create(**kwargs).choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None, "the markup never reaches content"
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["city"] == "Rome"

    calls, finish, content = streamed_calls(client.chat.completions.create(**kwargs, stream=True))
    assert (finish, content) == ("tool_calls", "")
    assert [(c["name"], c["arguments"]) for c in calls] == [(call.function.name, call.function.arguments)]


def test_bad_tool_requests_are_400s(agents: Server) -> None:
    client = agents.client()
    bad: list[tuple[dict[str, Any], str]] = [
        ({"tool_choice": "required"}, "tool_choice"),
        (
            {"tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice.function.name",
        ),
        ({"tools": [WEATHER_TOOL, WEATHER_TOOL]}, "tools[1].function.name"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "nonsense"}}}]},
            "tools[0].function.parameters",
        ),
    ]
    for extra, param in bad:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="smollm2", messages=ASK, max_tokens=5, **extra)
        assert caught.value.body["param"] == param, extra  # type: ignore[index]


async def _structured_and_free_text(client: openai.AsyncOpenAI) -> tuple[list[str], list[str]]:
    response_format: Any = {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True},
    }

    async def structured(i: int) -> str:
        response = await client.chat.completions.create(
            model="smollm2",
            messages=[{"role": "user", "content": f"Invent person number {i} and describe them."}],
            response_format=response_format,
            max_tokens=120,
            # Greedy: sampled, SmolLM2-135M sometimes loops in the whitespace JSON allows (see the README).
            temperature=0,
        )
        assert response.choices[0].finish_reason == "stop"
        return response.choices[0].message.content or ""

    async def free(i: int) -> str:
        response = await client.chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": f"Tell me fact {i} about owls."}], max_tokens=40
        )
        return response.choices[0].message.content or ""

    results = await asyncio.gather(*(structured(i) for i in range(1, 9)), *(free(i) for i in range(8)))
    return list(results[:8]), list(results[8:])


def test_json_schema_outputs_validate_in_a_batch_mixed_with_free_text(agents: Server) -> None:
    async def run() -> tuple[list[str], list[str]]:
        async with agents.async_client() as client:
            return await _structured_and_free_text(client)

    structured, free = asyncio.run(run())
    for text in structured:
        jsonschema.validate(json.loads(text), PERSON_SCHEMA)
    assert all(free)
    # Free text is not bent into JSON by the structured requests beside it.
    assert not all(text.lstrip().startswith("{") for text in free)
    assert agents.status()["smollm2"]["replicas"][0]["max_batch"] >= 2


def test_json_object_and_broken_schemas(agents: Server) -> None:
    client = agents.client()
    response = client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Invent person number 3 and describe them."}],
        response_format={"type": "json_object"},
        max_tokens=100,
        temperature=0,
    )
    assert response.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(response.choices[0].message.content or ""), dict)
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(150):
        deep = {"type": "object", "properties": {"a": deep}}
    broken: list[Any] = [
        {"type": "nonsense"},
        {"type": "object", "properties": {"a": {"type": "integer", "minimum": 5, "maximum": 1}}},
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}},
        {"type": "string", "pattern": "(unclosed"},
        # Valid for Python's `re`, refused by the grammar compiler inside the step (which would fail the batch).
        {"type": "object", "properties": {"pw": {"type": "string", "pattern": "^(?=.*[0-9]).{8,}$"}}},
        {"type": "string", "pattern": "\\bword\\b"},
        # Valid JSON Schema that the grammar compiler's strict mode cannot satisfy: `items` unset allows no item.
        {"type": "array", "minItems": 1},
        {"type": "object", "minProperties": 1},
        deep,
    ]
    restarts = agents.status()["smollm2"]["replicas"][0]["restarts"]
    for schema in broken:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model="smollm2",
                messages=ASK,
                response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
                max_tokens=5,
            )
        body: Any = caught.value.body
        assert body["param"] == "response_format.json_schema.schema"
        assert body["code"] == "invalid_json_schema"
    # The worker never saw them: the model still serves, from the same worker.
    assert client.chat.completions.create(model="smollm2", messages=ASK, max_tokens=3).choices[0].message.content
    assert agents.status()["smollm2"]["replicas"][0]["restarts"] == restarts


def test_logprobs_give_the_bytes_of_tokens_that_split_a_character(agents: Server) -> None:
    # The schema forces the text "🦉" (quotes included); SmolLM2 spells the owl with three tokens, each a part of
    # its four UTF-8 bytes, which no token's text can show: OpenAI writes those as \xNN and gives their bytes.
    response = agents.client().chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Which bird?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "bird", "schema": {"enum": ["🦉"]}}},
        logprobs=True,
        max_tokens=10,
        temperature=0,
    )
    content = response.choices[0].message.content
    assert content == '"🦉"'
    logprobs = response.choices[0].logprobs
    assert logprobs is not None and logprobs.content
    joined = b"".join(bytes(item.bytes or []) for item in logprobs.content)
    assert joined.startswith(content.encode()), joined
    partial = [item for item in logprobs.content if item.token.startswith("\\x")]
    assert partial, [item.token for item in logprobs.content]
    for item in partial:
        assert item.token == "".join(f"\\x{byte:02x}" for byte in item.bytes or [])


def test_same_seed_same_text_and_logprobs(agents: Server) -> None:
    client = agents.client()
    kwargs: Any = {"model": "smollm2", "messages": ASK, "max_tokens": 24, "temperature": 1.0}
    first = client.chat.completions.create(**kwargs, seed=1234, logprobs=True)
    again = client.chat.completions.create(**kwargs, seed=1234)
    assert first.choices[0].message.content == again.choices[0].message.content
    others = {client.chat.completions.create(**kwargs, seed=s).choices[0].message.content for s in (1, 2, 3)}
    assert len(others | {first.choices[0].message.content}) > 1, "seeds must matter"

    logprobs = first.choices[0].logprobs
    assert logprobs is not None and logprobs.content
    assert first.usage is not None and len(logprobs.content) == first.usage.completion_tokens
    assert all(item.logprob <= 0 for item in logprobs.content)
    assert "".join(item.token for item in logprobs.content).startswith(first.choices[0].message.content or "")
    assert all(item.top_logprobs == [] and item.bytes == list(item.token.encode()) for item in logprobs.content)

    stream = client.chat.completions.create(**kwargs, seed=1234, logprobs=True, stream=True)
    streamed = [
        item
        for chunk in stream
        for choice in chunk.choices
        if choice.logprobs
        for item in choice.logprobs.content or []
    ]
    assert [(i.token, round(i.logprob, 4)) for i in streamed] == [
        (i.token, round(i.logprob, 4)) for i in logprobs.content
    ]

    completion = client.completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=8, logprobs=0, temperature=0
    )
    choice = completion.choices[0]
    assert choice.logprobs is not None and choice.logprobs.tokens and choice.logprobs.token_logprobs
    assert all(lp is not None and lp <= 0 for lp in choice.logprobs.token_logprobs)
    assert choice.logprobs.text_offset is not None and choice.logprobs.text_offset[0] == 0
    assert "".join(choice.logprobs.tokens).startswith(choice.text)
    # With echo, OpenAI's logprobs cover the prompt's tokens too, which GenAI does not report: refused.
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="smollm2", prompt="x", max_tokens=2, logprobs=0, echo=True)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(**kwargs, logprobs=True, top_logprobs=3)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="smollm2", prompt="x", max_tokens=2, logprobs=3)


def test_speculative_decoding_serves_the_same_greedy_text_and_shows_in_status(agents: Server) -> None:
    client = agents.client()
    messages: Any = [{"role": "user", "content": "List the first five planets of the solar system."}]
    plain = client.chat.completions.create(model="smollm2", messages=messages, max_tokens=48, temperature=0)
    for model in ("smollm2-draft", "smollm2-lookup"):
        fast = client.chat.completions.create(model=model, messages=messages, max_tokens=48, temperature=0)
        assert fast.choices[0].message.content
        assert fast.usage is not None and plain.usage is not None
        assert fast.usage.prompt_tokens == plain.usage.prompt_tokens
        if model == "smollm2-draft":
            # The model is its own draft: every proposal is accepted, and greedy text is unchanged.
            assert fast.choices[0].message.content == plain.choices[0].message.content
        stream = client.chat.completions.create(
            model=model, messages=messages, max_tokens=48, temperature=0, stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == fast.choices[0].message.content
    status = agents.status()
    assert status["smollm2"]["speculative_decoding"] is None
    assert status["smollm2-draft"]["speculative_decoding"]["mode"] == "draft_model"
    assert status["smollm2-draft"]["speculative_decoding"]["num_assistant_tokens"] == 5
    assert status["smollm2-lookup"]["speculative_decoding"]["mode"] == "prompt_lookup"
    assert status["smollm2-lookup"]["speculative_decoding"]["max_ngram_size"] == 3


def test_reasoning_is_split_and_chat_template_kwargs_reach_the_template(agents: Server) -> None:
    client = agents.client()
    thinking = client.chat.completions.create(model="smollm2-think", messages=ASK, max_tokens=30, temperature=0)
    message: Any = thinking.choices[0].message
    # The template opened <think> and SmolLM2 never closes it: everything it wrote is reasoning.
    assert message.reasoning_content
    assert message.content is None or message.content == ""

    stream = client.chat.completions.create(
        model="smollm2-think", messages=ASK, max_tokens=30, temperature=0, stream=True
    )
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in stream if c.choices)
    assert reasoning == message.reasoning_content

    answer = client.chat.completions.create(
        model="smollm2-think",
        messages=ASK,
        max_tokens=30,
        temperature=0,
        extra_body={"chat_template_kwargs": {"enable_thinking": False}},
    )
    answered: Any = answer.choices[0].message
    assert answered.content
    assert answered.reasoning_content is None
    # A model without a reasoning parser never gets the field.
    with agents.http() as http:
        plain = http.post("/v1/chat/completions", json={"model": "smollm2", "messages": ASK, "max_tokens": 5}).json()
    assert "reasoning_content" not in plain["choices"][0]["message"]


def test_special_token_markers_are_kept_but_never_the_end_of_sequence(agents: Server) -> None:
    client = agents.client()
    # Whether greedy SmolLM2 reaches its end-of-sequence token soon depends on the CPU's kernels (AVX-512 or AVX2
    # break near-ties differently): the first of these prompts that ends on its own is the one checked.
    thinking_off = {"chat_template_kwargs": {"enable_thinking": False}}
    response = None
    for prompt in ("What is 2+2?", "Say hello.", "Hi!", "What is the capital of France?"):
        messages: Any = [{"role": "user", "content": prompt}]
        kwargs: Any = {"model": "smollm2-think", "messages": messages, "tools": [WEATHER_TOOL], "temperature": 0}
        response = client.chat.completions.create(**kwargs, max_tokens=200, extra_body=thinking_off)
        if response.choices[0].finish_reason in ("stop", "tool_calls"):
            break
    assert response is not None and response.choices[0].finish_reason in ("stop", "tool_calls"), "no prompt ended"
    message: Any = response.choices[0].message
    text = (message.reasoning_content or "") + (message.content or "")
    assert text and "<|im_end|>" not in text
    # The tools reached the template: its rendering is longer than without them.
    without = client.chat.completions.create(model="smollm2-think", messages=messages, max_tokens=1)
    assert response.usage is not None and without.usage is not None
    assert response.usage.prompt_tokens > without.usage.prompt_tokens + 20
