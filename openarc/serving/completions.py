"""Text completions: raw prompts, no chat template; `echo` and several prompts per request."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

from msgspec import UNSET, UnsetType

from openarc.engine.engine import Engine
from openarc.engine.stream import StreamDelta
from openarc.ipc import TextPrompt
from openarc.metrics import Metrics
from openarc.protocol.base import Performance, Usage
from openarc.protocol.completions import Completion, CompletionChoice, CompletionRequest
from openarc.serving.errors import invalid_request, unsupported
from openarc.serving.generation import Generation
from openarc.serving.ids import SYSTEM_FINGERPRINT, response_id
from openarc.serving.logprobs import completion_logprobs
from openarc.serving.models import resolve
from openarc.serving.sampling import check_common, sampling_params, token_budget
from openarc.serving.sse import SLOT, event, template


def _check_supported(request: CompletionRequest) -> None:
    check_common(request)
    if request.suffix:
        raise unsupported("suffix")
    if request.logprobs:
        raise unsupported("logprobs", "Only `logprobs: 0` (the chosen tokens' logprobs, no alternatives) is available.")
    if request.logprobs is not None and request.echo:
        # The echoed prompt's tokens would need logprobs too, and GenAI reports them for generated tokens only.
        raise unsupported("logprobs", "With `echo`, the prompt's logprobs would be needed; they are not available.")
    if request.best_of is not None and request.best_of != request.n:
        raise invalid_request("`best_of` other than `n` is not supported by this server.", "best_of")


class CompletionServing:
    def __init__(self, engine: Engine, metrics: Metrics | None = None, timeout: float | None = None) -> None:
        self.engine = engine
        self.metrics = metrics
        self.timeout = timeout

    async def create(self, request: CompletionRequest) -> Completion | AsyncIterator[bytes]:
        model = resolve(self.engine, request.model)
        _check_supported(request)
        texts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
        budget = token_budget(
            request.max_tokens, model.config.generation.max_tokens, model.config.max_tokens_limit, "max_tokens"
        )
        logprobs = request.logprobs is not None
        defaults = model.config.generation
        params = [sampling_params(request, defaults, budget, i, logprobs=logprobs) for i in range(request.n)]
        request_id = response_id("cmpl")
        generation = await Generation.start(
            request_id,
            self.engine,
            model,
            [TextPrompt(t) for t in texts],
            params,
            self.metrics,
            self.timeout,
            prompt_param="prompt",
        )
        # Choice i answers prompt i // n, as in OpenAI's API.
        echoes = [texts[i // request.n] if request.echo else "" for i in range(len(generation.streams))]
        if request.stream:
            include_usage = request.stream_options is not None and request.stream_options.include_usage
            return self._stream(generation, request.model, echoes, include_usage, logprobs)
        try:
            return await self._complete(generation, request.model, echoes, logprobs)
        finally:
            generation.close()

    async def _complete(self, generation: Generation, model: str, echoes: list[str], logprobs: bool) -> Completion:
        collected = await generation.collect()
        choices = [
            CompletionChoice(
                index=i,
                text=echoes[i] + choice.text,
                finish_reason=generation.finish_reasons[i],
                logprobs=completion_logprobs(choice.token_texts, choice.logprobs, 0) if logprobs else None,
            )
            for i, choice in enumerate(collected)
        ]
        return Completion(
            id=generation.request_id,
            created=int(time.time()),
            model=model,
            choices=choices,
            usage=generation.usage(),
            system_fingerprint=SYSTEM_FINGERPRINT,
            performance=generation.performance(),
        )

    def _stream(
        self, generation: Generation, model: str, echoes: list[str], include_usage: bool, logprobs: bool
    ) -> AsyncIterator[bytes]:
        created = int(time.time())
        usage_field: Usage | UnsetType | None = None if include_usage else UNSET

        def chunk(
            choices: list[CompletionChoice],
            usage: Usage | UnsetType | None = usage_field,
            performance: Performance | UnsetType = UNSET,
        ) -> bytes:
            return event(
                Completion(
                    id=generation.request_id,
                    created=created,
                    model=model,
                    choices=choices,
                    system_fingerprint=SYSTEM_FINGERPRINT,
                    usage=usage,
                    performance=performance,
                )
            )

        text_chunk = [
            template(chunk([CompletionChoice(index=i, text=SLOT, finish_reason=None)]))
            for i in range(len(generation.streams))
        ]

        # Where the next token starts in each choice's text (logprobs never come with an echoed prompt).
        offsets = [0] * len(echoes)

        def render(index: int, delta: StreamDelta) -> Iterator[bytes]:
            token_logprobs = None
            if logprobs and delta.logprobs is not None and delta.token_texts is not None:
                token_logprobs = completion_logprobs(delta.token_texts, delta.logprobs, offsets[index])
                offsets[index] += sum(len(text) for text in delta.token_texts if isinstance(text, str))
            if delta.finish_reason is not None or token_logprobs is not None:
                choice = CompletionChoice(
                    index=index, text=delta.text, finish_reason=delta.finish_reason, logprobs=token_logprobs
                )
                yield chunk([choice], performance=closing() if delta.finish_reason is not None else UNSET)
            elif delta.text:
                yield text_chunk[index](delta.text)

        opening = (
            chunk([CompletionChoice(index=index, text=echo, finish_reason=None)])
            for index, echo in enumerate(echoes)
            if echo
        )
        # The stream's last chunk carries the performance report: the usage chunk, or else the last finish chunk.
        usage_event = (lambda usage: chunk([], usage, generation.performance())) if include_usage else None
        closing = (lambda: UNSET) if include_usage else generation.last_finish_performance
        return generation.events(opening, render, usage_event)
