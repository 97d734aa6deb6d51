"""The engine: configured models, their replicas, and the requests running on them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from openarc.config import ModelConfig, SpeculativeConfig
from openarc.engine.errors import ModelExists, ModelUnavailable, Overloaded, Reloading, TooLarge
from openarc.engine.replica import Replica, ReplicaState
from openarc.engine.router import Router
from openarc.engine.stream import RequestStream
from openarc.ipc import ChatPrompt, LoadModel, SamplingParams, Speculative, TextPrompt

log = logging.getLogger("openarc.engine")
# How often idle models are looked for: keep_alive is honoured to within this.
IDLE_CHECK_SECONDS = 0.5


@dataclass
class ServedModel:
    config: ModelConfig
    replicas: list[Replica]
    created: int = field(default_factory=lambda: int(time.time()))
    router: Router = field(default_factory=Router)
    # Idle unload (keep_alive): the workers are gone until the next request reloads them.
    unloaded: bool = False
    last_used: float = field(default_factory=time.monotonic)

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def ready(self) -> bool:
        return all(r.state is ReplicaState.READY for r in self.replicas)

    @property
    def status(self) -> str:
        """unloaded (idle), ready, failed (every replica), or loading (anything else: loading, restarting)."""
        if self.unloaded:
            return "unloaded"
        states = {r.state for r in self.replicas}
        if states == {ReplicaState.READY}:
            return "ready"
        return "failed" if states == {ReplicaState.FAILED} else "loading"

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


# OpenVINO 2026.4's CPU plugin cannot import the blob it exported for a continuous-batching model: its
# PagedAttention nodes come back without the head sizes they were compiled with, the import fails, and OpenVINO
# deletes the blob, compiles again and writes it anew. A cache there costs a blob's write at every start (the
# model's size) and one more blob per setting that changes the compiled model, and saves nothing.
# tests/e2e/test_model_cache.py fails once an OpenVINO release imports it again.
_NO_MODEL_CACHE_DEVICES = ("CPU",)


def _cache_properties(device: str, model_cache_dir: str | None) -> dict[str, str]:
    """The server-wide model cache for this device, where OpenVINO can reuse it (a model's own CACHE_DIR wins)."""
    if not model_cache_dir or device.partition(".")[0] in _NO_MODEL_CACHE_DEVICES:
        return {}
    return {"CACHE_DIR": model_cache_dir}


def _load_spec(model: ModelConfig, device: str, model_cache_dir: str | None, models_dir: str | None) -> LoadModel:
    fields = ("cache_size", "num_kv_blocks", "max_num_batched_tokens", "enable_prefix_caching", "dynamic_split_fuse")
    scheduler = {key: value for key in fields if (value := getattr(model.scheduler, key)) is not None}
    scheduler["max_num_seqs"] = model.scheduler.max_num_seqs
    return LoadModel(
        model_id=model.id,
        source=model.source,
        device=device,
        scheduler=scheduler,
        properties=_cache_properties(device, model_cache_dir) | dict(model.properties),
        chat_template=model.chat_template,
        max_num_seqs=model.scheduler.max_num_seqs,
        refill_wait_ms=model.scheduler.refill_wait_ms,
        stream_interval=model.stream_interval,
        speculative=_speculative(model.speculative),
        filename=model.filename,
        hub_cache_dir=models_dir,
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
        self,
        models: Sequence[ModelConfig],
        log_level: str = "info",
        model_cache_dir: str | None = None,
        models_dir: str | None = None,
    ) -> None:
        self.log_level = log_level
        self.model_cache_dir = model_cache_dir
        self.models_dir = models_dir
        self.models: dict[str, ServedModel] = {}
        for model in models:
            self.models[model.id] = ServedModel(model, self._replicas(model))
        # One counter for all workers: GenAI request ids must never repeat while live.
        self._rids = itertools.count()
        self._reaper: asyncio.Task[None] | None = None

    def _replicas(self, model: ModelConfig) -> list[Replica]:
        specs = [_load_spec(model, device, self.model_cache_dir, self.models_dir) for device in model.devices]
        return [Replica(f"{model.id}/{spec.device}#{i}", spec, self.log_level) for i, spec in enumerate(specs)]

    def start(self) -> None:
        """Spawn every worker; models load in the background while the HTTP server answers."""
        for model in self.models.values():
            for replica in model.replicas:
                replica.start()
        self._reaper = asyncio.create_task(self._unload_idle_models(), name="idle unload")

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        await asyncio.gather(*(r.stop() for m in self.models.values() for r in m.replicas))

    @property
    def ready(self) -> bool:
        # A model unloaded for idleness is ready in the sense that counts: its next request reloads it.
        return all(model.ready or model.unloaded for model in self.models.values())

    @property
    def in_flight(self) -> int:
        """Requests sent to workers and not finished, over all models."""
        return sum(model.outstanding for model in self.models.values())

    def get(self, model_id: str) -> ServedModel | None:
        return self.models.get(model_id)

    def load(self, config: ModelConfig) -> ServedModel:
        """Serve a new model; its workers load in the background while the others keep serving."""
        if config.id in self.models:
            raise ModelExists(f"a model with id {config.id!r} is already served")
        model = ServedModel(config, self._replicas(config))
        self.models[config.id] = model
        for replica in model.replicas:
            replica.start()
        log.info("model %s: loading on %s", config.id, ", ".join(config.devices))
        return model

    async def unload(self, model_id: str, drain: bool = False, drain_timeout: float | None = None) -> ServedModel:
        """Stop serving a model and end its workers. With `drain`, running requests get up to `drain_timeout` to
        finish; the rest fail with a clear error."""
        model = self.models.pop(model_id)
        if drain:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(replica.idle.wait() for replica in model.replicas)), drain_timeout
                )
        for replica in model.replicas:
            replica.fail_streams(f"model {model_id!r} was unloaded")
        await asyncio.gather(*(replica.stop() for replica in model.replicas))
        log.info("model %s: unloaded", model_id)
        return model

    async def _unload_idle_models(self) -> None:
        while True:
            await asyncio.sleep(IDLE_CHECK_SECONDS)
            now = time.monotonic()
            for model in list(self.models.values()):
                keep_alive = model.config.keep_alive_seconds
                if model.outstanding or model.unloaded:
                    model.last_used = now
                elif keep_alive is not None and model.ready and now - model.last_used >= keep_alive:
                    model.unloaded = True
                    log.info("model %s: unloading after %.0fs idle (keep_alive)", model.id, now - model.last_used)
                    try:
                        await asyncio.gather(*(replica.stop() for replica in model.replicas))
                    except Exception:
                        # The reaper must outlive one bad stop, or no model would ever be unloaded again.
                        log.exception("model %s: idle unload failed", model.id)

    def _reload(self, model: ServedModel) -> None:
        log.info("model %s: reloading for a request", model.id)
        model.replicas = self._replicas(model.config)
        model.unloaded = False
        model.last_used = time.monotonic()
        for replica in model.replicas:
            replica.start()

    async def submit(
        self,
        model: ServedModel,
        prompts: Sequence[ChatPrompt | TextPrompt],
        params: Sequence[SamplingParams],
    ) -> tuple[list[RequestStream], asyncio.Event]:
        """Start one engine request per (prompt, params) pair; they share one wake-up event."""
        model.last_used = time.monotonic()
        if model.unloaded:
            self._reload(model)
            if model.config.idle_reload == "refuse":
                raise Reloading(f"model {model.id!r} was unloaded after idling and is loading again; retry shortly")
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
