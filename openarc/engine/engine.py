"""The engine: configured models, their replicas, and the requests running on them."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from openarc.config import ModelConfig, SpeculativeConfig
from openarc.engine.errors import ModelUnavailable, Overloaded, TooLarge
from openarc.engine.replica import Replica, ReplicaState
from openarc.engine.router import Router
from openarc.engine.stream import RequestStream
from openarc.ipc import ChatPrompt, LoadModel, SamplingParams, Speculative, TextPrompt


@dataclass
class ServedModel:
    config: ModelConfig
    replicas: list[Replica]
    created: int = field(default_factory=lambda: int(time.time()))
    router: Router = field(default_factory=Router)

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def ready(self) -> bool:
        return all(r.state is ReplicaState.READY for r in self.replicas)

    @property
    def context_length(self) -> int | None:
        return next((r.context_length for r in self.replicas if r.context_length is not None), None)

    @property
    def chat_template(self) -> str:
        """The chat template the workers render with ("" until one has loaded)."""
        return next((r.chat_template for r in self.replicas if r.chat_template), "")

    @property
    def outstanding(self) -> int:
        """Requests sent to the workers and not finished: running plus waiting in the workers' queues."""
        return sum(replica.active for replica in self.replicas)

    @property
    def capacity(self) -> int:
        ready = sum(1 for r in self.replicas if r.state is ReplicaState.READY) or len(self.replicas)
        return ready * self.config.scheduler.max_num_seqs + self.config.max_waiting

    async def wait_for_replica(self) -> Replica:
        """A ready replica, waiting while any is still loading or restarting."""
        while True:
            replica = self.router.pick(self.replicas)
            if replica is not None:
                return replica
            pending = [r for r in self.replicas if r.state in (ReplicaState.LOADING, ReplicaState.RESTARTING)]
            if not pending:
                errors = "; ".join(f"{r.name}: {r.error or r.state.value}" for r in self.replicas)
                raise ModelUnavailable(f"model {self.id!r} is not available ({errors})")
            waits = [asyncio.ensure_future(r.state_changed.wait()) for r in pending]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()


def _load_spec(model: ModelConfig, device: str, model_cache_dir: str | None) -> LoadModel:
    fields = ("cache_size", "num_kv_blocks", "max_num_batched_tokens", "enable_prefix_caching", "dynamic_split_fuse")
    scheduler = {key: value for key in fields if (value := getattr(model.scheduler, key)) is not None}
    scheduler["max_num_seqs"] = model.scheduler.max_num_seqs
    return LoadModel(
        model_id=model.id,
        source=model.source,
        device=device,
        scheduler=scheduler,
        properties=({"CACHE_DIR": model_cache_dir} if model_cache_dir else {}) | dict(model.properties),
        chat_template=model.chat_template,
        max_num_seqs=model.scheduler.max_num_seqs,
        speculative=_speculative(model.speculative),
    )


# GenAI proposes nothing unless told how many tokens (or how confidently) to propose.
_DEFAULT_ASSISTANT_TOKENS = 5
_DEFAULT_NGRAM_SIZE = 3


def _speculative(config: SpeculativeConfig | None) -> Speculative | None:
    if config is None:
        return None
    tokens = config.num_assistant_tokens
    if tokens is None and config.assistant_confidence_threshold is None:
        tokens = _DEFAULT_ASSISTANT_TOKENS
    return Speculative(
        draft_source=config.draft,
        draft_device=config.draft_device,
        prompt_lookup=config.prompt_lookup,
        num_assistant_tokens=tokens,
        assistant_confidence_threshold=config.assistant_confidence_threshold,
        max_ngram_size=(config.max_ngram_size or _DEFAULT_NGRAM_SIZE) if config.prompt_lookup else None,
    )


class Engine:
    def __init__(
        self, models: Sequence[ModelConfig], log_level: str = "info", model_cache_dir: str | None = None
    ) -> None:
        self.log_level = log_level
        self.models: dict[str, ServedModel] = {}
        for model in models:
            replicas = [
                Replica(f"{model.id}/{device}#{i}", _load_spec(model, device, model_cache_dir), log_level)
                for i, device in enumerate(model.devices)
            ]
            self.models[model.id] = ServedModel(model, replicas)
        # One counter for all workers: GenAI request ids must never repeat while live.
        self._rids = itertools.count()

    def start(self) -> None:
        """Spawn every worker; models load in the background while the HTTP server answers."""
        for model in self.models.values():
            for replica in model.replicas:
                replica.start()

    async def stop(self) -> None:
        await asyncio.gather(*(r.stop() for m in self.models.values() for r in m.replicas))

    @property
    def ready(self) -> bool:
        return all(model.ready for model in self.models.values())

    def get(self, model_id: str) -> ServedModel | None:
        return self.models.get(model_id)

    async def submit(
        self,
        model: ServedModel,
        prompts: Sequence[ChatPrompt | TextPrompt],
        params: Sequence[SamplingParams],
    ) -> tuple[list[RequestStream], asyncio.Event]:
        """Start one engine request per (prompt, params) pair; they share one wake-up event."""
        if len(prompts) > model.capacity:
            raise TooLarge(
                f"this request needs {len(prompts)} sequences (prompts times n), but model {model.id!r} "
                f"holds at most {model.capacity} running and waiting"
            )
        if model.outstanding + len(prompts) > model.capacity:
            raise Overloaded(
                f"model {model.id!r} is at capacity ({model.outstanding} requests running or waiting); retry shortly"
            )
        notify = asyncio.Event()
        streams: list[RequestStream] = []
        try:
            for prompt, sampling in zip(prompts, params, strict=True):
                replica = await model.wait_for_replica()
                rid = next(self._rids)
                stream = RequestStream(rid, replica.name, notify)
                replica.submit(rid, prompt, sampling, stream)
                streams.append(stream)
        except BaseException:
            for stream in streams:
                self.abort(model, stream)
            raise
        return streams, notify

    def abort(self, model: ServedModel, stream: RequestStream) -> None:
        for replica in model.replicas:
            if replica.name == stream.replica:
                replica.abort(stream.rid)
