"""Messages between the HTTP process's engine and a device worker process.

Framed as a 4-byte big-endian length and a msgpack body. The engine sends a `LoadModel` first, then
`Command`s; the worker answers `WorkerReady` or `WorkerFailed`, then one `StepReport` per engine step
carrying every request's new text, never one message per token.
"""

from __future__ import annotations

import struct
from typing import Any, Literal

import msgspec

FRAME_HEADER = struct.Struct(">I")

# "timeout" never crosses the pipe: the HTTP process fails its own streams when server.request_timeout passes.
# A token's text, or, for a token that is only part of a character (byte-level vocabularies), its UTF-8 bytes.
TokenPiece = str | list[int]
ErrorKind = Literal["invalid_request", "context_length", "engine", "timeout"]
FinishReason = Literal["stop", "length"]


class Speculative(msgspec.Struct, kw_only=True):
    """Speculative decoding: a draft model proposes tokens, or (prompt lookup) n-grams of the prompt do."""

    # An OpenVINO IR folder; None with prompt_lookup.
    draft_source: str | None = None
    draft_device: str = "CPU"
    prompt_lookup: bool = False
    num_assistant_tokens: int | None = None
    assistant_confidence_threshold: float | None = None
    max_ngram_size: int | None = None


class LoadModel(msgspec.Struct, kw_only=True):
    model_id: str
    source: str
    device: str
    scheduler: dict[str, Any]
    properties: dict[str, Any]
    chat_template: str | None = None
    # The worker's admission limit: GenAI ignores max_num_seqs under dynamic split-fuse.
    max_num_seqs: int = 64
    # The most the worker holds a step for requests replacing ones that just ended (0: never).
    refill_wait_ms: float = 0.0
    # After a stream's first token, send its output once it carries this many tokens (and at its end).
    stream_interval: int = 1
    speculative: Speculative | None = None
    # For an hf:// source: the GGUF file in the repo, and where downloads go (None: the Hugging Face cache).
    filename: str | None = None
    hub_cache_dir: str | None = None


class SamplingParams(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Resolved sampling settings: every default is already applied by the serving layer."""

    # The client's own limit: refused when the prompt leaves less room. None: generate until the end of the context,
    # but at most max_tokens_cap (the model's default or limit) when that is set.
    max_tokens: int | None = None
    max_tokens_cap: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: list[str] = []
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    ignore_eos: bool = False
    # A JSON schema (as JSON text) the output must match, enforced while decoding.
    json_schema: str | None = None
    # Report each generated token's logprob and text.
    logprobs: bool = False
    # Decode special tokens into the text (but never the end-of-sequence ones): tool-call markers can be special.
    keep_special_tokens: bool = False


class ImageData(msgspec.Struct, array_like=True):
    """A decoded image: row-major RGB bytes, height x width x 3 (decoded in the HTTP process, never in the worker)."""

    pixels: bytes
    width: int
    height: int


class ChatPrompt(msgspec.Struct, tag="chat"):
    """Messages as plain dicts, ready for the chat template, with the template's `tools` and extra variables."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    template_kwargs: dict[str, Any] | None = None
    # Report the end of the rendered prompt (does it leave the model inside `<think>`?).
    report_tail: bool = False
    # For vlm models: the images, in the order of the `<ov_genai_image_N>` tags in the messages' text.
    images: list[ImageData] = []


class TextPrompt(msgspec.Struct, tag="text"):
    text: str


class AddRequest(msgspec.Struct, tag="add"):
    rid: int
    prompt: ChatPrompt | TextPrompt
    params: SamplingParams


class AbortRequest(msgspec.Struct, tag="abort"):
    rid: int


class Shutdown(msgspec.Struct, tag="shutdown"):
    pass


Command = AddRequest | AbortRequest | Shutdown


class RequestOutput(msgspec.Struct, array_like=True, omit_defaults=True):
    """What one request produced since the last report. `error` ends the request."""

    rid: int
    text: str = ""
    tokens: int = 0
    finish_reason: FinishReason | None = None
    # Set on the first output of a request.
    prompt_tokens: int | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    # With SamplingParams.logprobs: one logprob and one piece per new token.
    logprobs: list[float] | None = None
    token_texts: list[TokenPiece] | None = None
    # With ChatPrompt.report_tail, on the first output: the rendered prompt's last characters.
    prompt_tail: str | None = None


class WorkerStats(msgspec.Struct, kw_only=True):
    active: int = 0
    waiting: int = 0
    steps: int = 0
    # Time inside the engine's step() and the sequences the steps carried, summed: over a stretch of wall time,
    # how busy the worker kept the device, how long a step took and how full it was (the mean batch).
    step_seconds: float = 0.0
    step_sequences: int = 0
    # The most sequences one step has carried: proof of batching that does not depend on timing.
    max_batch: int = 0
    kv_cache_usage: float = 0.0
    generated_tokens: int = 0
    # The longest add_request with images (the vision encoder runs inside it and holds the worker meanwhile).
    max_vision_ms: float = 0.0


class WorkerReady(msgspec.Struct, tag="ready", kw_only=True):
    pid: int
    load_seconds: float
    context_length: int | None
    # The chat template in use (the model's own, or the configured one).
    chat_template: str = ""
    # Tokenizer facts (vocabulary size, special tokens) and the model's own generation defaults, for model info.
    tokenizer: dict[str, Any] = {}
    generation_defaults: dict[str, Any] = {}
    # Where the model was loaded from (an hf:// source resolved to its downloaded path).
    source_path: str = ""


class WorkerFailed(msgspec.Struct, tag="failed"):
    error: str


class StepReport(msgspec.Struct, tag="step"):
    outputs: list[RequestOutput]
    stats: WorkerStats


Event = WorkerReady | WorkerFailed | StepReport


def frame(message: msgspec.Struct, encoder: msgspec.msgpack.Encoder) -> bytes:
    body = encoder.encode(message)
    return FRAME_HEADER.pack(len(body)) + body
