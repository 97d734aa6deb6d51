"""OpenAI sampling fields + the model's configured defaults → the engine's SamplingParams."""

from __future__ import annotations

from typing import NamedTuple

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


class TokenBudget(NamedTuple):
    # The client's own max_tokens: a prompt that leaves less room is refused.
    requested: int | None
    # For a request that set none: the model's default or limit, which the worker lowers to the room the prompt
    # leaves, since the client did not ask for it (as vLLM does).
    cap: int | None


def token_budget(requested: int | None, default: int | None, limit: int | None, param: str) -> TokenBudget:
    """The request's output budget: its own (`param`), never above the model's limit; else the default and limit."""
    if requested is not None:
        if limit is not None and requested > limit:
            raise invalid_request(
                f"{param} is {requested}, but this model allows at most {limit} tokens per request.", param
            )
        return TokenBudget(requested, None)
    caps = [value for value in (default, limit) if value is not None]
    return TokenBudget(None, min(caps) if caps else None)


def sampling_params(
    request: SamplingRequest,
    defaults: GenerationDefaults,
    budget: TokenBudget,
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
        max_tokens=budget.requested,
        max_tokens_cap=budget.cap,
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
