"""The worker's scheduler loop: commands in → admit → step → read handles → one report out → sleep when idle."""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import openvino_genai

from openarc.ipc import (
    AbortRequest,
    AddRequest,
    Command,
    RequestOutput,
    Shutdown,
    StepReport,
    TokenPiece,
    WorkerStats,
)
from openarc.worker.channel import CommandChannel
from openarc.worker.pipeline import ContextTooLong, ModelRunner, PromptRejected
from openarc.worker.refill import refill_budget
from openarc.worker.text_output import TextOutput, decode_step

log = logging.getLogger("openarc.worker")

_RUNNING = openvino_genai.GenerationStatus.RUNNING
_IGNORED = openvino_genai.GenerationStatus.IGNORED
_LENGTH = openvino_genai.GenerationFinishReason.LENGTH
_NONE = openvino_genai.GenerationFinishReason.NONE


@dataclass
class PreparedRequest:
    """Tokenized and checked on arrival, so a bad request is refused at once, not when its turn comes."""

    rid: int
    # Token ids, or for a vlm request the rendered prompt text (its images in `images`).
    input_ids: Any
    prompt_tokens: int
    config: Any
    text: TextOutput
    prompt_tail: str | None = None
    # Collected per step when the request asked for logprobs: the new tokens' ids and logprobs.
    logprobs: bool = False
    new_ids: list[int] = field(default_factory=list)
    new_logprobs: list[float] = field(default_factory=list)
    images: list[Any] | None = None


@dataclass
class ActiveRequest:
    prepared: PreparedRequest
    # GenAI stops a request whose Python handle is dropped: keep it until the request ends.
    handle: Any
    reported_prompt: bool = False
    finish_reason: Any = field(default=_NONE)
    # Output held back until it carries `stream_interval` tokens; the first token is never held.
    unsent: RequestOutput | None = None
    token_sent: bool = False


class WorkerLoop:
    def __init__(
        self,
        runner: ModelRunner,
        channel: CommandChannel,
        max_num_seqs: int,
        refill_wait_seconds: float = 0.0,
        stream_interval: int = 1,
    ) -> None:
        self.runner = runner
        self.channel = channel
        self.max_num_seqs = max_num_seqs
        self.refill_wait_seconds = refill_wait_seconds
        self.stream_interval = stream_interval
        self.waiting: deque[PreparedRequest] = deque()
        self.active: dict[int, ActiveRequest] = {}
        self.outputs: list[RequestOutput] = []
        self.stats = WorkerStats()
        self.last_step_seconds = 0.0
        self.stopping = False
        # False after a hold that no request came to, until one arrives: clients that stopped sending (a batch
        # job's end, a quiet spell) must not stall every later step for successors that never come.
        self.successors_expected = True

    def run(self) -> None:
        while not self.stopping:
            for command in self.channel.receive(block=self.is_idle() and not self.has_news()):
                self.handle_command(command)
            if self.stopping:
                return
            self.admit_waiting()
            if self.runner.pipeline.has_non_finished_requests():
                self.step()
            self.read_handles()
            self.hold_for_successors(self.send_report())

    def hold_for_successors(self, ended: int) -> None:
        """Take (and tokenize) new requests for up to the refill budget, until as many came as ended."""
        if ended <= 0 or self.refill_wait_seconds <= 0:
            return  # no hold to decide on: the loop's next read takes whatever came, without a read here too
        # Requests sent while the step ran: successors of earlier ones whose hold ended before they came (a short
        # budget, a slow turnaround). They prove that clients are still sending, so a hold nobody came to must not
        # keep this one from holding: their requests would wait a whole step more, every time.
        for command in self.channel.receive(block=False):
            self.handle_command(command)
        if not self.successors_expected:
            return
        budget = refill_budget(self.refill_wait_seconds, ended, len(self.active), self.last_step_seconds)
        if budget <= 0:
            return
        deadline = time.perf_counter() + budget
        arrived = 0
        while arrived < ended and not self.stopping and len(self.active) + len(self.waiting) < self.max_num_seqs:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                self.successors_expected = arrived > 0
                break
            for command in self.channel.receive_within(remaining):
                arrived += isinstance(command, AddRequest)
                self.handle_command(command)

    def has_news(self) -> bool:
        """Whether the next report has something to say: outputs (a request refused while a hold took it in), or a
        change in load (an abort), so the engine's view of the worker stays true."""
        return bool(self.outputs) or (len(self.active), len(self.waiting)) != (self.stats.active, self.stats.waiting)

    def is_idle(self) -> bool:
        # Cancelled requests leave the pipeline only in the next step; step until they are gone to free the KV cache.
        return not self.active and not self.waiting and not self.runner.pipeline.has_non_finished_requests()

    def handle_command(self, command: Command) -> None:
        if self.stopping:
            return  # what came after Shutdown: the HTTP process has stopped waiting for it
        if isinstance(command, AddRequest):
            self.successors_expected = True
            self.prepare(command)
        elif isinstance(command, AbortRequest):
            self.abort(command.rid)
        elif isinstance(command, Shutdown):
            self.stopping = True

    def prepare(self, request: AddRequest) -> None:
        try:
            images = None
            if self.runner.is_vlm:
                input_ids, images, prompt_tokens, tail = self.runner.encode_vlm(request.prompt)
            else:
                input_ids, prompt_tokens, tail = self.runner.encode(request.prompt)
            self.runner.check_prompt(prompt_tokens)
            max_new = self.runner.max_new_tokens(
                prompt_tokens, request.params.max_tokens, request.params.max_tokens_cap
            )
            config = self.runner.generation_config(request.params, max_new)
        except ContextTooLong as exc:
            self.outputs.append(RequestOutput(request.rid, error=str(exc), error_kind="context_length"))
            return
        except PromptRejected as exc:
            self.outputs.append(RequestOutput(request.rid, error=str(exc), error_kind="invalid_request"))
            return
        except Exception as exc:
            # Whatever a request does to the tokenizer must not take the worker (and its other requests) down.
            log.exception("could not prepare request %d", request.rid)
            self.outputs.append(RequestOutput(request.rid, error=f"engine error: {exc}", error_kind="engine"))
            return
        text = TextOutput(request.params.stop, request.params.keep_special_tokens, self.runner.token_bytes)
        self.waiting.append(
            PreparedRequest(
                request.rid, input_ids, prompt_tokens, config, text, tail, request.params.logprobs, images=images
            )
        )

    def abort(self, rid: int) -> None:
        request = self.active.pop(rid, None)
        if request is not None:
            request.handle.cancel()
            return
        self.waiting = deque(r for r in self.waiting if r.rid != rid)

    def admit_waiting(self) -> None:
        while self.waiting and len(self.active) < self.max_num_seqs:
            prepared = self.waiting.popleft()
            try:
                if prepared.images is not None:
                    # The vision encoder runs here, inside add_request, holding this worker for its duration.
                    started = time.perf_counter()
                    handle = self.runner.pipeline.add_request(
                        prepared.rid, prepared.input_ids, prepared.images, prepared.config
                    )
                    if prepared.images:
                        vision_ms = (time.perf_counter() - started) * 1000
                        self.stats.max_vision_ms = max(self.stats.max_vision_ms, round(vision_ms, 1))
                        log.debug(
                            "request %d: %d images encoded in %.1f ms", prepared.rid, len(prepared.images), vision_ms
                        )
                else:
                    handle = self.runner.pipeline.add_request(prepared.rid, prepared.input_ids, prepared.config)
            except Exception as exc:
                log.exception("add_request failed for request %d", prepared.rid)
                self.outputs.append(RequestOutput(prepared.rid, error=f"engine error: {exc}", error_kind="engine"))
                continue
            self.active[prepared.rid] = ActiveRequest(prepared, handle)

    def step(self) -> None:
        started = time.perf_counter()
        try:
            self.runner.pipeline.step()
        except Exception as exc:
            # The pipeline's state is unknown now: fail what it held and let the supervisor start a fresh worker.
            log.exception("engine step failed")
            for rid in self.active:
                self.outputs.append(RequestOutput(rid, error=f"engine error: {exc}", error_kind="engine"))
            self.active.clear()
            self.send_report()
            raise
        self.last_step_seconds = time.perf_counter() - started
        metrics = self.runner.pipeline.get_metrics()
        self.stats.steps += 1
        self.stats.step_seconds += self.last_step_seconds
        self.stats.step_sequences += metrics.scheduled_requests
        self.stats.max_batch = max(self.stats.max_batch, metrics.scheduled_requests)
        self.stats.kv_cache_usage = float(metrics.cache_usage)

    def read_handles(self) -> None:
        """Collect every request's new tokens, decode them all in one call, and queue their outputs."""
        touched: list[tuple[int, ActiveRequest, int, bool]] = []
        for rid, request in list(self.active.items()):
            try:
                tokens, done = self.read_tokens(request)
            except Exception as exc:
                self.fail(rid, request, exc)
                continue
            if tokens or done or not request.reported_prompt:
                touched.append((rid, request, tokens, done))
        if not touched:
            return
        texts = [request.prepared.text for _, request, _, _ in touched]
        try:
            new_texts = decode_step(self.runner.tokenizer, texts, [done for *_, done in touched])
            token_texts = self.token_texts([request.prepared for _, request, _, _ in touched])
        except Exception as exc:
            for rid, request, _, _ in touched:
                self.fail(rid, request, exc)
            return
        for (rid, request, tokens, done), new_text in zip(touched, new_texts, strict=True):
            prepared = request.prepared
            text = prepared.text
            if text.stopped and not done:
                request.handle.stop()
                done = True
            output = RequestOutput(rid, text=new_text, tokens=tokens)
            if prepared.logprobs:
                output.logprobs, prepared.new_logprobs = prepared.new_logprobs, []
                output.token_texts = token_texts.pop(rid, [])
                prepared.new_ids = []
            if not request.reported_prompt:
                output.prompt_tokens = prepared.prompt_tokens
                output.prompt_tail = prepared.prompt_tail
                request.reported_prompt = True
            if done:
                output.finish_reason = "length" if request.finish_reason == _LENGTH and not text.stopped else "stop"
                del self.active[rid]
            self.queue(request, output, done)

    def queue(self, request: ActiveRequest, output: RequestOutput, done: bool) -> None:
        """Queue `output` (with whatever was held back) for this step's report, or hold it back too: after a stream's
        first token, its output goes out once it carries `stream_interval` tokens, and at its end."""
        if request.unsent is not None:
            output = _merged(request.unsent, output)
            request.unsent = None
        if not done and request.token_sent and output.tokens < self.stream_interval:
            request.unsent = output
            return
        request.token_sent = request.token_sent or output.tokens > 0
        self.outputs.append(output)

    def token_texts(self, requests: list[PreparedRequest]) -> dict[int, list[TokenPiece]]:
        """Each new token's own text for the requests that asked for logprobs, in one decode call for all; a token
        that is part of a character (it decodes to "") as its bytes, when the vocabulary's table has them."""
        asking = [r for r in requests if r.logprobs and r.new_ids]
        if not asking:
            return {}
        ids = [t for r in asking for t in r.new_ids]
        texts: list[TokenPiece] = list(self.runner.tokenizer.decode([[t] for t in ids], skip_special_tokens=False))
        table = self.runner.token_bytes
        if table is not None:
            for i, (token, text) in enumerate(zip(ids, texts, strict=True)):
                if not text and 0 <= token < len(table) and table[token]:
                    texts[i] = list(table[token])
        result: dict[int, list[TokenPiece]] = {}
        start = 0
        for r in asking:
            result[r.rid] = texts[start : start + len(r.new_ids)]
            start += len(r.new_ids)
        return result

    def read_tokens(self, request: ActiveRequest) -> tuple[int, bool]:
        """(new token count, finished) for one request; IGNORED requests fail."""
        handle = request.handle
        status = handle.get_status()
        if status == _IGNORED:
            raise RuntimeError("the engine could not schedule this request (it does not fit the KV cache)")
        tokens = 0
        # read() blocks, holding the GIL, when nothing is queued: only read what can_read() promises.
        while handle.can_read():
            for generation in handle.read().values():
                text = request.prepared.text
                if text.keep_special_tokens:
                    text.add_tokens([t for t in generation.generated_ids if t not in self.runner.end_token_ids])
                else:
                    text.add_tokens(generation.generated_ids)
                if request.prepared.logprobs:
                    request.prepared.new_ids.extend(generation.generated_ids)
                    request.prepared.new_logprobs.extend(generation.generated_log_probs)
                tokens += len(generation.generated_ids)
                if generation.finish_reason != _NONE:
                    request.finish_reason = generation.finish_reason
        self.stats.generated_tokens += tokens
        return tokens, status != _RUNNING

    def fail(self, rid: int, request: ActiveRequest, exc: Exception) -> None:
        log.error("request %d failed: %s", rid, exc)
        request.handle.cancel()
        del self.active[rid]
        self.outputs.append(RequestOutput(rid, error=f"engine error: {exc}", error_kind="engine"))

    def send_report(self) -> int:
        """Send what the step produced; return how many requests it ended."""
        if not self.has_news():
            return 0
        self.stats.active, self.stats.waiting = len(self.active), len(self.waiting)
        if self.is_idle():
            # GenAI's metrics only refresh inside step(); with no sequence left, no KV block is in use.
            self.stats.kv_cache_usage = 0.0
        # Ended requests first: the HTTP process delivers in this order, so their clients can send the next ones
        # while the other streams' tokens are still being written.
        self.outputs.sort(key=_still_running)
        ended = len(self.outputs) - sum(map(_still_running, self.outputs))
        self.channel.send(StepReport(self.outputs, self.stats))
        self.outputs = []
        return ended


def _merged(earlier: RequestOutput, later: RequestOutput) -> RequestOutput:
    later.text = earlier.text + later.text
    later.tokens += earlier.tokens
    if earlier.logprobs is not None:
        later.logprobs = earlier.logprobs + (later.logprobs or [])
        later.token_texts = (earlier.token_texts or []) + (later.token_texts or [])
    return later


def _still_running(output: RequestOutput) -> bool:
    return output.finish_reason is None and output.error is None
