"""The engine requests behind one API call — n choices for each prompt — started, drained and closed together."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from msgspec import UNSET, UnsetType

from openarc.engine.engine import Engine, ServedModel
from openarc.engine.errors import ModelUnavailable, Overloaded, Reloading, TooLarge
from openarc.engine.stream import RequestStream, StreamDelta
from openarc.ipc import ChatPrompt, FinishReason, SamplingParams, TextPrompt, TokenPiece
from openarc.metrics import Metrics
from openarc.protocol.base import Performance, Usage
from openarc.serving.errors import (
    APIError,
    engine_failed,
    invalid_request,
    overloaded,
    reloading,
    timed_out,
    unavailable,
)
from openarc.serving.sse import DONE, error_event

log = logging.getLogger("openarc.requests")


@dataclass
class CollectedChoice:
    text: str
    token_texts: list[TokenPiece] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


class Generation:
    def __init__(
        self,
        request_id: str,
        engine: Engine,
        model: ServedModel,
        streams: list[RequestStream],
        n: int,
        notify: asyncio.Event,
        metrics: Metrics | None = None,
        timeout: float | None = None,
    ) -> None:
        self.request_id = request_id
        self.engine = engine
        self.model = model
        self.streams = streams
        self.n = n
        self._notify = notify
        self.finish_reasons: list[FinishReason | None] = [None] * len(streams)
        self._closed = False
        self._metrics = metrics
        # Resolved once: a label lookup per token would cost as much as the observation.
        self._inter_token = metrics.inter_token_latency.labels(model.id) if metrics is not None else None
        self._delivered_at: list[float | None] = [None] * len(streams)
        # One timer per API call, not per token: it fails whatever is still running when it fires.
        self._timeout = timeout
        self._finish_chunks = 0
        self._timer = asyncio.get_running_loop().call_later(timeout, self._time_out) if timeout else None

    @classmethod
    async def start(
        cls,
        request_id: str,
        engine: Engine,
        model: ServedModel,
        prompts: Sequence[ChatPrompt | TextPrompt],
        params: Sequence[SamplingParams],
        metrics: Metrics | None = None,
        timeout: float | None = None,
        prompt_param: str | None = None,
    ) -> Generation:
        """Submit every (prompt, choice) pair and wait until the worker accepted or refused each one.

        Waiting here lets a refusal (prompt too long, template error) become a real 4xx before any 200 is sent;
        a prompt too long for the context names `prompt_param`, with OpenAI's code `context_length_exceeded`.
        """
        n = len(params)
        try:
            streams, notify = await engine.submit(
                model, [p for p in prompts for _ in range(n)], [s for _ in prompts for s in params]
            )
        except ModelUnavailable as exc:
            raise unavailable(str(exc)) from None
        except Overloaded as exc:
            raise overloaded(str(exc)) from None
        except TooLarge as exc:
            raise invalid_request(str(exc), "n") from None
        except Reloading as exc:
            raise reloading(str(exc)) from None
        generation = cls(request_id, engine, model, streams, n, notify, metrics, timeout)
        try:
            while not all(stream.started for stream in streams):
                await notify.wait()
                notify.clear()
                generation.raise_refusal(prompt_param)
        except BaseException:
            generation.close()
            raise
        return generation

    def raise_refusal(self, prompt_param: str | None = None) -> None:
        for stream in self.streams:
            if stream.error is not None:
                raise self.error_for(stream.error, stream.error_kind, prompt_param)

    @staticmethod
    def error_for(message: str, kind: str | None, prompt_param: str | None = None) -> APIError:
        if kind == "invalid_request":
            return invalid_request(message)
        if kind == "context_length":
            return invalid_request(message, prompt_param, "context_length_exceeded")
        if kind == "timeout":
            return timed_out(message)
        return engine_failed(message)

    def _time_out(self) -> None:
        tokens = sum(stream.completion_tokens for stream in self.streams)
        message = (
            f"The request did not finish within the server's request_timeout of {self._timeout:g} s "
            f"({tokens} tokens generated); it was stopped. Ask for fewer tokens or raise server.request_timeout."
        )
        for stream in self.streams:
            if not stream.finished:
                self.engine.abort(self.model, stream)
                stream.fail(message, "timeout")

    @property
    def finished(self) -> bool:
        return all(reason is not None for reason in self.finish_reasons)

    def last_finish_performance(self) -> Performance | UnsetType:
        """For a stream without a usage chunk: the report, when called for the last choice's finish chunk."""
        self._finish_chunks += 1
        return self.performance() if self._finish_chunks == len(self.streams) else UNSET

    def performance(self) -> Performance:
        """OpenArc's per-request report, as of now: call it when the last choice has finished."""
        now = time.monotonic()
        start = min(stream.started_at for stream in self.streams)
        first = min((s.first_token_at for s in self.streams if s.first_token_at is not None), default=None)
        usage = self.usage()
        if first is None:
            return Performance(
                time_to_first_token_ms=None,
                prefill_tokens_per_s=None,
                decode_tokens_per_s=None,
                total_time_ms=round((now - start) * 1000, 1),
            )
        # Each choice's first token comes out of the prefill; the rest are decoded.
        decoded = usage.completion_tokens - sum(1 for s in self.streams if s.first_token_at is not None)
        return Performance(
            time_to_first_token_ms=round((first - start) * 1000, 1),
            prefill_tokens_per_s=round(usage.prompt_tokens / (first - start), 1) if first > start else None,
            decode_tokens_per_s=round(decoded / (now - first), 1) if decoded > 0 and now > first else None,
            total_time_ms=round((now - start) * 1000, 1),
        )

    async def wakeups(self) -> AsyncIterator[list[tuple[int, StreamDelta]]]:
        """Everything that arrived by each wake-up, as (choice index, delta) pairs, until all have finished."""
        while True:
            ready = []
            for index, stream in enumerate(self.streams):
                delta = stream.take()
                if delta is not None:
                    if delta.finish_reason is not None:
                        self.finish_reasons[index] = delta.finish_reason
                    if delta.tokens and self._inter_token is not None:
                        self._observe_delivery(index, delta.tokens)
                    ready.append((index, delta))
            if ready:
                yield ready
            if all(stream.drained for stream in self.streams):
                return
            await self._notify.wait()
            self._notify.clear()

    async def deltas(self) -> AsyncIterator[tuple[int, StreamDelta]]:
        async for ready in self.wakeups():
            for item in ready:
                yield item

    async def collect(self) -> list[CollectedChoice]:
        """Each choice's whole text and (if asked for) token logprobs; an engine error becomes the request's error."""
        texts: list[list[str]] = [[] for _ in self.streams]
        choices = [CollectedChoice("") for _ in self.streams]
        async for index, delta in self.deltas():
            if delta.error is not None:
                raise self.error_for(delta.error, delta.error_kind)
            texts[index].append(delta.text)
            if delta.logprobs is not None and delta.token_texts is not None:
                choices[index].token_texts.extend(delta.token_texts)
                choices[index].logprobs.extend(delta.logprobs)
        for choice, parts in zip(choices, texts, strict=True):
            choice.text = "".join(parts)
        return choices

    async def events(
        self,
        opening: Iterable[bytes],
        render: Callable[[int, StreamDelta], Iterable[bytes]],
        usage_event: Callable[[Usage], bytes] | None,
    ) -> AsyncIterator[bytes]:
        """The SSE body: `opening`, each delta as `render` frames it, the usage event if asked, then [DONE].

        The status line is already sent, so an engine error travels as an error event before [DONE].
        All frames ready at one wake-up go out in one write: a client that lags gets fewer, larger writes.
        Closing the iterator (the client left) aborts whatever is still running.
        """
        frames = list(opening)
        try:
            async for ready in self.wakeups():
                for index, delta in ready:
                    if delta.error is not None:
                        # A timeout says so (type and code), as it would before the status line.
                        error = self.error_for(delta.error, delta.error_kind)
                        yield b"".join([*frames, error_event(error.message, error.type, error.code), DONE])
                        return
                    frames.extend(render(index, delta))
                if frames and not all(stream.drained for stream in self.streams):
                    yield b"".join(frames)
                    frames = []
            if usage_event is not None:
                frames.append(usage_event(self.usage()))
            yield b"".join([*frames, DONE])
        finally:
            self.close()

    def usage(self) -> Usage:
        # n choices of one prompt share its prompt: count it once, as OpenAI does.
        prompt = sum(self.streams[i].prompt_tokens or 0 for i in range(0, len(self.streams), self.n))
        completion = sum(stream.completion_tokens for stream in self.streams)
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    def _observe_delivery(self, index: int, tokens: int) -> None:
        assert self._inter_token is not None
        now = time.monotonic()
        last = self._delivered_at[index]
        if last is not None:
            self._inter_token.observe((now - last) / tokens)
        self._delivered_at[index] = now

    def _outcomes(self) -> list[str]:
        """How each engine request ended: its finish reason, "error", or "abort" (the client left)."""
        return [
            reason or ("error" if stream.error is not None else "abort")
            for stream, reason in zip(self.streams, self.finish_reasons, strict=True)
        ]

    def _observe_end(self, now: float, usage: Usage, outcomes: list[str]) -> None:
        if self._metrics is None:
            return
        metrics, model = self._metrics, self.model.id
        metrics.prompt_tokens.labels(model).inc(usage.prompt_tokens)
        metrics.generation_tokens.labels(model).inc(usage.completion_tokens)
        for stream, outcome in zip(self.streams, outcomes, strict=True):
            metrics.request_success.labels(model, outcome).inc()
            if outcome not in ("error", "abort"):
                metrics.e2e_request_latency.labels(model).observe(now - stream.started_at)
            if stream.first_token_at is not None:
                metrics.time_to_first_token.labels(model).observe(stream.first_token_at - stream.started_at)

    def close(self) -> None:
        """Abort whatever has not finished (a client that left) and log the request once."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for stream in self.streams:
            if not stream.finished:
                self.engine.abort(self.model, stream)
        now, usage, outcomes = time.monotonic(), self.usage(), self._outcomes()
        self._observe_end(now, usage, outcomes)
        self._log(now, usage, outcomes)

    def _log(self, now: float, usage: Usage, outcomes: list[str]) -> None:
        first = min((s.first_token_at for s in self.streams if s.first_token_at is not None), default=None)
        start = min(s.started_at for s in self.streams)
        ttft = f"{(first - start) * 1000:.0f}ms" if first is not None else "-"
        decode_seconds = now - first if first is not None else 0.0
        rate = f"{usage.completion_tokens / decode_seconds:.1f}" if decode_seconds > 0 else "-"
        outcome = "aborted" if "abort" in outcomes else ",".join(outcomes)
        log.info(
            "%s model=%s replica=%s prompt_tokens=%d completion_tokens=%d ttft=%s tokens_per_s=%s finish=%s",
            self.request_id,
            self.model.id,
            ",".join(sorted({s.replica for s in self.streams})),
            usage.prompt_tokens,
            usage.completion_tokens,
            ttft,
            rate,
            outcome,
        )
