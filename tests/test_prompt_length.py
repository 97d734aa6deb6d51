"""A prompt the tokenizer may have cut is refused with its true bound, never served cut or reported short."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import openvino_genai
import pytest

from openarc.worker.pipeline import PromptRejected, checked_length, truncation_limit


class _WordTokenizer:
    """One token per word, cut at `cut` tokens when given."""

    def __init__(self, cut: int | None) -> None:
        self.cut = cut

    def encode(self, text: str, add_special_tokens: bool = True) -> Any:
        length = len(text.split())
        if self.cut is not None:
            length = min(length, self.cut)
        return SimpleNamespace(input_ids=_ids(length))


def _ids(length: int) -> Any:
    return SimpleNamespace(get_shape=lambda: [1, length])


def test_the_gguf_tokenizer_cuts_at_the_context_length(smollm2_gguf: Path) -> None:
    tokenizer = openvino_genai.Tokenizer(str(smollm2_gguf))
    # What makes the check necessary: asking GenAI not to truncate does not stop this tokenizer.
    cut = tokenizer.encode("hello " * 9000, add_special_tokens=False, truncation=False).input_ids.get_shape()[1]
    assert cut == 8192
    assert truncation_limit(tokenizer, 8192) == 8192


@pytest.mark.parametrize(
    ("cut", "context_length", "limit"),
    [
        (None, 8192, None),  # never cuts
        (4096, 8192, 4096),  # cuts inside the context: prompts that reach 4096 tokens must be refused
        (20000, 8192, None),  # cuts only beyond the context: every prompt that long is refused for room anyway
        (1000, None, 1000),  # no stated context: found within the probe
    ],
)
def test_truncation_limit_is_found_by_probing(cut: int | None, context_length: int | None, limit: int | None) -> None:
    assert truncation_limit(_WordTokenizer(cut), context_length) == limit


def test_prompts_below_the_limit_keep_their_length() -> None:
    assert checked_length(_ids(8191), 8192, 8192) == 8191
    assert checked_length(_ids(50000), None, 8192) == 50000


def test_a_prompt_at_the_limit_is_refused_with_what_is_known() -> None:
    with pytest.raises(PromptRejected) as caught:
        checked_length(_ids(8192), 8192, 8192)
    assert str(caught.value) == (
        "This model's maximum context length is 8192 tokens. However, your prompt has at least 8192 tokens. "
        "Please reduce the length of the prompt."
    )
    with pytest.raises(PromptRejected) as caught:
        checked_length(_ids(4096), 4096, 32768)
    assert "reads at most 4096 tokens, and your prompt has at least 4096: it would be cut" in str(caught.value)
