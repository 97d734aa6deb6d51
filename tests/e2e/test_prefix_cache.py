"""Prefix caching is on by default: a chat's next turn skips the prefill of the turns it shares with the last one.

Proven by the worker's step counter. With `max_num_batched_tokens: 64` GenAI prefills a prompt 64 tokens a step,
so a prompt's steps count the tokens it had to prefill; a model with caching turned off is the control.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.server import Server, run_server, write_config

CHUNK = 64
# ~400 tokens: seven chunks of prefill without the cache.
LONG_TURN = "Here is the log of the lighthouse on the northern cape, kept day by day. " * 25


@pytest.fixture(scope="module")
def two_models(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("prefix")
    chunked = {"max_num_batched_tokens": CHUNK}
    config = write_config(
        tmp / "config.yaml",
        [
            {"id": "cached", "source": str(smollm2_gguf), "scheduler": chunked},
            {"id": "uncached", "source": str(smollm2_gguf), "scheduler": {**chunked, "enable_prefix_caching": False}},
        ],
    )
    with run_server(config, tmp) as running:
        yield running


def steps(server: Server, model: str) -> int:
    count: int = server.status()[model]["replicas"][0]["steps"]
    return count


def second_turn(server: Server, model: str) -> tuple[int, int]:
    """The steps and the prompt tokens of a chat's second turn, after its first ran on the same model."""
    client = server.client()
    history: list[ChatCompletionMessageParam] = [{"role": "user", "content": LONG_TURN}]
    first = client.chat.completions.create(model=model, messages=history, max_tokens=1, temperature=0)
    history += [
        {"role": "assistant", "content": first.choices[0].message.content or ""},
        {"role": "user", "content": "Which day was the stormiest?"},
    ]
    before = steps(server, model)
    second = client.chat.completions.create(model=model, messages=history, max_tokens=1, temperature=0)
    assert second.usage is not None
    return steps(server, model) - before, second.usage.prompt_tokens


def test_a_second_turn_prefills_only_what_the_first_did_not(two_models: Server) -> None:
    uncached_steps, prompt_tokens = second_turn(two_models, "uncached")
    cached_steps, cached_prompt_tokens = second_turn(two_models, "cached")
    assert cached_prompt_tokens == prompt_tokens > 6 * CHUNK
    # Without the cache the whole prompt is prefilled again, a chunk a step; with it, only the new turn's tokens
    # (and the last, partly filled, cache block) are, which fit in one or two chunks.
    assert uncached_steps >= math.ceil(prompt_tokens / CHUNK), uncached_steps
    assert cached_steps <= 2, cached_steps
