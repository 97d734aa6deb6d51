"""The `<think>` reasoning parser on canned outputs, streamed at every split point."""

from __future__ import annotations

import pytest

from openarc.serving.reasoning_parsers import (
    ReasoningDelta,
    ThinkReasoningParser,
    default_reasoning_parser,
    think_opened_by_prompt,
)

# (output, the prompt opened <think>, reasoning, content)
CASES: list[tuple[str, bool, str | None, str | None]] = [
    # Qwen3 with thinking on: the model opens and closes the block itself.
    (
        "<think>\nThe user asks 2+2.\nThat is 4.\n</think>\n\nThe answer is 4.",
        False,
        "The user asks 2+2.\nThat is 4.",
        "The answer is 4.",
    ),
    # Qwen3 with enable_thinking=false in a template that leaves an empty block to the model.
    ("<think>\n\n</think>\n\nThe answer is 4.", False, None, "The answer is 4."),
    # DeepSeek-R1: the prompt ends with "<think>\n", the output only closes it.
    ("Okay, 2+2.\n</think>\n\nThe answer is 4.", True, "Okay, 2+2.", "The answer is 4."),
    ("<think>Okay.</think>4", True, "Okay.", "4"),
    ("</think>4", True, None, "4"),
    # Cut by max_tokens while thinking.
    ("<think>\nStill thinking <", False, "Still thinking <", None),
    ("Still thinking", True, "Still thinking", None),
    # No reasoning: all content, verbatim, even text that mentions the tags.
    ("  The answer is 4 < 5.", False, None, "  The answer is 4 < 5."),
    ("Wrap it in <think> and </think> tags.", False, None, "Wrap it in <think> and </think> tags."),
    ("4</think>", False, None, "4</think>"),
    ("<thinking> is not the tag", False, None, "<thinking> is not the tag"),
    ("\n", False, None, "\n"),
    ("", False, None, None),
    # Only the first block is reasoning.
    ("<think>a</think>b <think>c</think>", False, "a", "b <think>c</think>"),
]


def stream(chunks: list[str], start_in_reasoning: bool) -> tuple[str | None, str | None]:
    parser = ThinkReasoningParser(start_in_reasoning=start_in_reasoning)
    deltas = [parser.feed(chunk) for chunk in chunks] + [parser.finish()]
    return "".join(d.reasoning for d in deltas) or None, "".join(d.content for d in deltas) or None


@pytest.mark.parametrize(("text", "opened", "reasoning", "content"), CASES)
def test_split_of_reasoning_and_content(text: str, opened: bool, reasoning: str | None, content: str | None) -> None:
    assert ThinkReasoningParser.parse(text, start_in_reasoning=opened) == (reasoning, content)


@pytest.mark.parametrize(("text", "opened"), [(case[0], case[1]) for case in CASES])
def test_every_split_streams_like_parse(text: str, opened: bool) -> None:
    expected = ThinkReasoningParser.parse(text, start_in_reasoning=opened)
    for split in range(len(text) + 1):
        assert stream([text[:split], text[split:]], opened) == expected, f"split at {split}"
    assert stream(list(text), opened) == expected


def test_reasoning_streams_as_it_comes_and_holds_only_a_possible_tag() -> None:
    parser = ThinkReasoningParser()
    assert parser.feed("<thi") == ReasoningDelta()
    assert parser.feed("nk>\nFirst") == ReasoningDelta(reasoning="First")
    assert parser.feed(" idea.\n</th") == ReasoningDelta(reasoning=" idea.")
    assert parser.feed("ink>\n\n") == ReasoningDelta()
    assert parser.feed("Answer") == ReasoningDelta(content="Answer")
    assert parser.feed(" here.") == ReasoningDelta(content=" here.")
    assert parser.finish() == ReasoningDelta()


def test_prompt_that_opens_think() -> None:
    # DeepSeek-R1 spells its role tokens with U+FF5C, a full-width bar.
    assert think_opened_by_prompt("<\uff5cUser\uff5c>2+2?<\uff5cAssistant\uff5c><think>\n")
    assert not think_opened_by_prompt("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not think_opened_by_prompt("<|im_start|>assistant\n")


def test_default_parser_from_chat_template() -> None:
    qwen3 = "{%- if '</think>' in content %}{%- set reasoning_content = content.split('</think>')[0] %}"
    assert default_reasoning_parser(qwen3) == "think"
    assert default_reasoning_parser("{{ '<|im_start|>assistant\\n' }}") is None
