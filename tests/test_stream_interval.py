"""`stream_interval` on the real engine: after the first token, a stream's output goes out in batches of that many
tokens, and its end at once, with the same text, token count and logprobs as token by token."""

from __future__ import annotations

from pathlib import Path

import pytest

from openarc.ipc import AddRequest, Command, LoadModel, RequestOutput, SamplingParams, Shutdown, StepReport, TextPrompt
from openarc.worker.loop import WorkerLoop
from openarc.worker.pipeline import ModelRunner


@pytest.fixture(scope="module")
def runner(smollm2_gguf: Path) -> ModelRunner:
    spec = LoadModel(model_id="m", source=str(smollm2_gguf), device="CPU", scheduler={"cache_size": 1}, properties={})
    return ModelRunner(spec)


class OneRequestChannel:
    """Sends one request, collects the reports, and shuts the worker down once the request has ended."""

    def __init__(self, params: SamplingParams) -> None:
        self.request = AddRequest(1, TextPrompt("The capital of France is"), params)
        self.reports: list[StepReport] = []

    def receive(self, block: bool) -> list[Command]:
        if not self.reports:
            return [self.request]
        if any(o.finish_reason or o.error for r in self.reports for o in r.outputs):
            return [Shutdown()]
        return []

    def receive_within(self, seconds: float) -> list[Command]:
        return []

    def send(self, report: StepReport) -> None:
        self.reports.append(report)


def outputs(runner: ModelRunner, stream_interval: int, **params: object) -> list[RequestOutput]:
    channel = OneRequestChannel(SamplingParams(temperature=0, ignore_eos=True, logprobs=True, **params))  # type: ignore[arg-type]
    WorkerLoop(runner, channel, max_num_seqs=8, stream_interval=stream_interval).run()  # type: ignore[arg-type]
    return [o for r in channel.reports for o in r.outputs]


@pytest.mark.parametrize(
    ("stream_interval", "tokens_per_output"),
    [(1, [1] * 11), (4, [1, 4, 4, 2]), (100, [1, 10])],
)
def test_first_token_at_once_then_batches_of_the_interval_and_the_end_at_once(
    runner: ModelRunner, stream_interval: int, tokens_per_output: list[int]
) -> None:
    token_by_token = outputs(runner, 1, max_tokens=11)
    batched = outputs(runner, stream_interval, max_tokens=11)
    assert [o.tokens for o in batched] == tokens_per_output
    assert [o.finish_reason for o in batched] == [None] * (len(batched) - 1) + ["length"]
    assert batched[0].prompt_tokens == token_by_token[0].prompt_tokens
    assert "".join(o.text for o in batched) == "".join(o.text for o in token_by_token)
    # Each output's logprobs and token texts are its own tokens', in order.
    for output in batched:
        assert output.logprobs is not None and output.token_texts is not None
        assert len(output.logprobs) == len(output.token_texts) == output.tokens
    assert [lp for o in batched for lp in o.logprobs or []] == [lp for o in token_by_token for lp in o.logprobs or []]
    assert [t for o in batched for t in o.token_texts or []] == [t for o in token_by_token for t in o.token_texts or []]


def test_a_stop_string_ends_the_stream_at_once_with_the_text_held_back(runner: ModelRunner) -> None:
    text = "".join(o.text for o in outputs(runner, 1, max_tokens=11))
    stop = text.split()[3]
    batched = outputs(runner, 100, max_tokens=11, stop=[stop])
    # The first token goes at once (GenAI may first report the prompt alone while it checks for the stop string);
    # everything after it, far fewer than 100 tokens, goes with the end, in the step that found the stop string.
    first_token = next(i for i, o in enumerate(batched) if o.tokens)
    assert len(batched) == first_token + 2
    assert batched[-1].finish_reason == "stop"
    assert "".join(o.text for o in batched) == text[: text.index(stop)]
