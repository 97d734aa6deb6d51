"""OpenAI sampling fields + the model's configured defaults → the engine's SamplingParams."""

from __future__ import annotations

from openarc.config import GenerationDefaults
from openarc.ipc import SamplingParams
from openarc.protocol.base import SamplingRequest
from openarc.serving.errors import invalid_request, unsupported

_SEED_SPACE = 2**64


def _pick(requested: float | None, default: float | None, fallback: float) -> float:
    if requested is not None:
        return requested
    return default if default is not None else fallback


def check_common(request: SamplingRequest) -> None:
    """Refuse what we cannot honour instead of silently ignoring it."""
    if request.logit_bias:
        raise unsupported("logit_bias")
    if request.top_logprobs:
        raise unsupported("top_logprobs")
    if request.stream_options is not None and not request.stream:
        raise invalid_request("`stream_options` is only allowed when `stream` is true.", "stream_options")


def bounded_max_tokens(requested: int | None, default: int | None, limit: int | None) -> int | None:
    """The request's output budget: its own, else the model's default, never above the model's limit."""
    if limit is not None and requested is not None and requested > limit:
        raise invalid_request(
            f"max_tokens is {requested}, but this model allows at most {limit} tokens per request.", "max_tokens"
        )
    chosen = requested if requested is not None else default
    if limit is not None:
        return min(chosen, limit) if chosen is not None else limit
    return chosen


def sampling_params(
    request: SamplingRequest,
    defaults: GenerationDefaults,
    max_tokens: int | None,
    seed_offset: int = 0,
    json_schema: str | None = None,
    logprobs: bool = False,
    keep_special_tokens: bool = False,
) -> SamplingParams:
    """`seed_offset` gives each of n choices its own, still reproducible, random stream."""
    stop = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    top_k = request.top_k if request.top_k is not None else (defaults.top_k or 0)
    seed = None if request.seed is None else (request.seed + seed_offset) % _SEED_SPACE
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=_pick(request.temperature, defaults.temperature, 1.0),
        top_p=_pick(request.top_p, defaults.top_p, 1.0),
        top_k=max(top_k, 0),
        min_p=_pick(request.min_p, defaults.min_p, 0.0),
        seed=seed,
        stop=stop,
        presence_penalty=_pick(request.presence_penalty, defaults.presence_penalty, 0.0),
        frequency_penalty=_pick(request.frequency_penalty, defaults.frequency_penalty, 0.0),
        repetition_penalty=_pick(request.repetition_penalty, defaults.repetition_penalty, 1.0),
        ignore_eos=request.ignore_eos,
        json_schema=json_schema,
        logprobs=logprobs,
        keep_special_tokens=keep_special_tokens,
    )
