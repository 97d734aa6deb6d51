"""The YAML config: typed with msgspec, checked strictly, every error naming the file and the key path."""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from openarc.event_loop import EventLoopChoice
from openarc.hub import is_hub_source, parse_repo

Port = Annotated[int, Meta(ge=0, le=65535)]
PositiveInt = Annotated[int, Meta(ge=1)]
ModelId = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$")]
PropertyValue = str | int | float | bool


class ConfigStruct(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every config section: an unknown key is an error, so typos never pass silently."""


class ServerConfig(ConfigStruct):
    host: str = "127.0.0.1"
    port: Port = 8000
    api_keys: list[Annotated[str, Meta(min_length=1)]] = []
    # Seconds in-flight requests get to finish after SIGTERM/SIGINT before workers are stopped.
    drain_timeout: Annotated[float, Meta(ge=0)] = 30.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Whether GET /metrics needs an API key like every other route (probes never do).
    metrics_require_key: bool = False
    # Larger request bodies get 413.
    max_request_bytes: Annotated[int, Meta(ge=1024)] = 16 * 1024 * 1024
    # OpenVINO's compiled-model cache (CACHE_DIR) for every model that sets none: faster warm starts. null: off.
    # Not for CPU models: OpenVINO 2026.4 cannot re-import their blob and would rewrite it at every start.
    model_cache_dir: str | None = "~/.cache/openarc/ov_cache"
    # Where hf:// sources are downloaded; null: the Hugging Face cache (HF_HOME, ~/.cache/huggingface).
    models_dir: str | None = None
    # Images in chat requests to vlm models: http(s) URLs are fetched by the daemon within these limits; private,
    # loopback and link-local addresses are refused unless allowed (SSRF).
    max_image_bytes: Annotated[int, Meta(ge=1024)] = 20 * 1024 * 1024
    max_image_pixels: PositiveInt = 40_000_000
    # Larger images are scaled down so that their longer side is this.
    max_image_side: Annotated[int, Meta(ge=28)] = 2048
    image_fetch_timeout: Annotated[float, Meta(gt=0)] = 10.0
    allow_private_image_urls: bool = False
    # Seconds one API call may take, queueing included; a longer one is stopped with 504. null: no limit.
    request_timeout: Annotated[float, Meta(gt=0)] | None = 600.0
    # Keys for the management routes (/openarc/...): once set, API keys no longer open them (also OPENARC_ADMIN_KEY).
    admin_keys: list[Annotated[str, Meta(min_length=1)]] = []
    # Browser origins allowed to call the API (CORS), e.g. ["http://localhost:3000"] or ["*"]. Empty: CORS off.
    cors_allow_origins: list[Annotated[str, Meta(min_length=1)]] = []
    # Serve HTTPS with these PEM files (both or neither); relative paths are relative to the config file.
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    # The HTTP process's event loop: auto takes uvloop where it is installed (a dependency except on Windows).
    event_loop: EventLoopChoice = "auto"


class SchedulerConfig(ConfigStruct):
    """GenAI `SchedulerConfig` fields; unset ones keep GenAI's default."""

    # KV-cache size in GB; 0 lets GenAI grow the cache on demand (CPU).
    cache_size: Annotated[int, Meta(ge=0)] | None = None
    num_kv_blocks: Annotated[int, Meta(ge=0)] | None = None
    # Also OpenArc's admission limit: GenAI ignores it under dynamic_split_fuse, so the worker enforces it.
    max_num_seqs: PositiveInt = 64
    max_num_batched_tokens: PositiveInt | None = None
    enable_prefix_caching: bool = True
    dynamic_split_fuse: bool | None = None
    # OpenArc's: how long a worker may hold its next step, after requests ended, for the requests that replace them
    # (clients that keep N requests in flight send the next one as one ends). 0 never holds. See worker/refill.py.
    refill_wait_ms: Annotated[float, Meta(ge=0, le=1000)] = 20.0


class GenerationDefaults(ConfigStruct):
    """Per-model defaults for sampling parameters a request leaves unset."""

    max_tokens: PositiveInt | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(gt=0, le=1)] | None = None
    top_k: Annotated[int, Meta(ge=0)] | None = None
    min_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    presence_penalty: Annotated[float, Meta(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Meta(ge=-2, le=2)] | None = None
    repetition_penalty: Annotated[float, Meta(gt=0)] | None = None


class SpeculativeConfig(ConfigStruct):
    """Speculative decoding: a draft model (`draft`) or prompt lookup (`prompt_lookup: true`) proposes tokens that
    the model checks in one pass. Greedy output is unchanged; only the speed is."""

    # An OpenVINO IR folder of a small model with the same tokenizer; relative paths are relative to the config.
    draft: str | None = None
    draft_device: Annotated[str, Meta(min_length=1)] = "CPU"
    prompt_lookup: bool = False
    # Tokens proposed per step (default 5), or instead: propose while the draft is at least this confident.
    num_assistant_tokens: PositiveInt | None = None
    assistant_confidence_threshold: Annotated[float, Meta(gt=0, lt=1)] | None = None
    # Prompt lookup: the longest n-gram of the prompt matched against the output's end (default 3).
    max_ngram_size: PositiveInt | None = None


class ModelConfig(ConfigStruct):
    id: ModelId
    # An OpenVINO IR folder or a .gguf file (relative paths are relative to the config file), or a Hugging Face repo:
    # hf://OWNER/REPO[@REVISION], an OpenVINO IR repo, or a GGUF repo with `filename`.
    source: Annotated[str, Meta(min_length=1)]
    filename: Annotated[str, Meta(min_length=1)] | None = None
    # llm, or vlm (image inputs); unset: vlm when the IR folder holds openvino_text_embeddings_model.xml.
    task: Literal["llm", "vlm"] | None = None
    # One worker process (replica) per entry.
    devices: Annotated[list[Annotated[str, Meta(min_length=1)]], Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["CPU"]
    )
    scheduler: SchedulerConfig = msgspec.field(default_factory=SchedulerConfig)
    properties: dict[str, PropertyValue] = {}
    generation: GenerationDefaults = msgspec.field(default_factory=GenerationDefaults)
    # The most tokens one request may ask for; more is refused with 400 (unset requests get at most this).
    max_tokens_limit: PositiveInt | None = None
    # After a stream's first token (sent at once), its text is sent once this many new tokens are ready, and at its
    # end: ~1/N as many SSE writes, for when the one HTTP process's CPU is the limit; the stream gets burstier.
    stream_interval: PositiveInt = 1
    # Requests that may wait beyond the running ones (max_num_seqs per replica); more get 429 + Retry-After.
    max_waiting: Annotated[int, Meta(ge=0)] = 256
    # A Jinja chat template, inline or as a path to a file; replaces the model's own.
    chat_template: str | None = None
    # How tool calls are read from the model's text; unset: chosen from the chat template (hermes if it knows none).
    tool_parser: Literal["hermes", "qwen", "llama3_json", "mistral"] | None = None
    # How reasoning is split from the answer; unset: `think` if the chat template knows <think>, "none": never.
    reasoning_parser: Literal["think", "none"] | None = None
    speculative: SpeculativeConfig | None = None
    # Unload the model's workers after this long without requests ("30s", "5m", "2h", seconds, or "forever").
    keep_alive: str | Annotated[float, Meta(gt=0)] = "forever"
    # A request for an idle-unloaded model waits while it reloads, or (refuse) gets 503 + Retry-After at once.
    idle_reload: Literal["wait", "refuse"] = "wait"

    @property
    def keep_alive_seconds(self) -> float | None:
        return parse_duration(self.keep_alive)


class Config(ConfigStruct):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    models: list[ModelConfig] = []


_DURATION = re.compile(r"^\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: str | float) -> float | None:
    """Seconds in "30s", "5m", "2h", "1d", a number of seconds, or None for "forever"; ValueError otherwise."""
    if isinstance(value, int | float):
        return float(value)
    if value.strip().lower() in ("forever", "never", "-1"):
        return None
    match = _DURATION.match(value)
    if match is None or float(match["value"]) <= 0:
        raise ValueError(f"expected a duration like 30s, 5m or 2h, or forever; got {value!r}")
    return float(match["value"]) * _UNIT_SECONDS[match["unit"] or "s"]


# A VLM folder (optimum's image-text-to-text export) has its language model under another name, beside this one.
VLM_MARKER = "openvino_text_embeddings_model.xml"
_LANGUAGE_MODELS = ("openvino_model.xml", "openvino_language_model.xml")


class ConfigError(Exception):
    """A config that cannot be served; the message names the file, the key path and what was expected."""


_VIRTUAL_DEVICES = ("AUTO", "HETERO", "MULTI", "BATCH")


def check_device(name: str, available: Sequence[str]) -> str | None:
    """Why `name` cannot run here, or None. `GPU` means `GPU.0`; AUTO/HETERO/MULTI name their members."""
    head, _, members = name.partition(":")
    if head in _VIRTUAL_DEVICES:
        if not members:
            return None if head == "AUTO" else f"{head} needs a device list, e.g. {head}:GPU,CPU"
        for member in members.split(","):
            problem = check_device(member.strip(), available)
            if problem:
                return problem
        return None
    if name in available:
        return None
    if "." not in name and any(device.startswith(name + ".") for device in available):
        return None
    return f"device {name!r} is not available on this machine (available: {', '.join(available) or 'none'})"


def _resolve_chat_template(value: str, base: Path) -> str | None:
    if "{{" in value or "{%" in value:
        return value
    path = base / Path(value).expanduser()
    return path.read_text() if path.is_file() else None


def check_model(model: ModelConfig, where: str, base: Path, available: Sequence[str]) -> list[str]:
    """What is wrong with one models entry (`where` is its key path), resolving its paths against `base`."""
    problems = []
    source = base / Path(model.source).expanduser()
    if is_hub_source(model.source):
        try:
            parse_repo(model.source)
        except ValueError as exc:
            problems.append(f"{where}.source: {exc}")
    elif model.filename is not None:
        problems.append(f"{where}.filename: only for hf:// sources (name the .gguf file in `source` instead)")
    elif not source.exists():
        problems.append(f"{where}.source: no such file or folder: {source}")
    elif source.is_file() and source.suffix.lower() != ".gguf":
        problems.append(f"{where}.source: expected an OpenVINO IR folder or a .gguf file, got {source}")
    elif source.is_dir() and not any((source / name).is_file() for name in _LANGUAGE_MODELS):
        problems.append(f"{where}.source: {source} holds no openvino_model.xml (not an OpenVINO IR folder)")
    else:
        model.source = str(source.resolve())
        if model.task is None:
            model.task = "vlm" if (source / VLM_MARKER).is_file() else "llm"
    for i, device in enumerate(model.devices):
        problem = check_device(device, available)
        if problem:
            problems.append(f"{where}.devices[{i}]: {problem}")
    if model.chat_template is not None:
        template = _resolve_chat_template(model.chat_template, base)
        if template is None:
            problems.append(f"{where}.chat_template: not a Jinja template and no such file: {model.chat_template}")
        else:
            model.chat_template = template
    try:
        parse_duration(model.keep_alive)
    except ValueError as exc:
        problems.append(f"{where}.keep_alive: {exc}")
    if model.speculative is not None:
        problems.extend(_check_speculative(model.speculative, f"{where}.speculative", base, available))
    return problems


def _check_speculative(spec: SpeculativeConfig, where: str, base: Path, available: Sequence[str]) -> list[str]:
    if (spec.draft is None) == (not spec.prompt_lookup):
        return [f"{where}: set either `draft` (a draft model) or `prompt_lookup: true`, not both or neither"]
    if spec.num_assistant_tokens is not None and spec.assistant_confidence_threshold is not None:
        return [f"{where}: num_assistant_tokens and assistant_confidence_threshold exclude each other"]
    problems = []
    if spec.draft is None:
        if spec.assistant_confidence_threshold is not None:
            problems.append(f"{where}.assistant_confidence_threshold: prompt lookup proposes a fixed number of tokens")
        return problems
    if spec.max_ngram_size is not None:
        problems.append(f"{where}.max_ngram_size: only for prompt_lookup")
    draft = base / Path(spec.draft).expanduser()
    if not (draft / "openvino_model.xml").is_file():
        problems.append(f"{where}.draft: {draft} holds no openvino_model.xml (a draft must be an OpenVINO IR folder)")
    else:
        spec.draft = str(draft.resolve())
    problem = check_device(spec.draft_device, available)
    if problem:
        problems.append(f"{where}.draft_device: {problem}")
    return problems


def _check_tls(server: ServerConfig, base: Path) -> list[str]:
    if (server.tls_certfile is None) != (server.tls_keyfile is None):
        return ["$.server: tls_certfile and tls_keyfile go together: set both or neither"]
    problems = []
    for key in ("tls_certfile", "tls_keyfile"):
        value = getattr(server, key)
        if value is None:
            continue
        file = base / Path(value).expanduser()
        if not file.is_file():
            problems.append(f"$.server.{key}: no such file: {file}")
        else:
            setattr(server, key, str(file))
    if not problems and server.tls_certfile and server.tls_keyfile:
        # Load them now: a bad PEM or a key that does not match must be a config error, not a startup traceback.
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(server.tls_certfile, server.tls_keyfile)
        except (ssl.SSLError, OSError) as exc:
            problems.append(f"$.server.tls_certfile: cannot use this certificate and key: {exc}")
    return problems


def available_devices() -> list[str]:
    # Imported on demand: only config checking needs OpenVINO in the HTTP process.
    import openvino

    return list(openvino.Core().available_devices)


def parse_config(text: str | bytes, path: Path, devices: Callable[[], Sequence[str]] = available_devices) -> Config:
    """Decode and check a config; `path` names the file in errors and anchors relative paths."""
    try:
        config = msgspec.yaml.decode(text, type=Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {with_path(str(exc))}") from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    base = path.resolve().parent
    if config.server.model_cache_dir:
        config.server.model_cache_dir = str(base / Path(config.server.model_cache_dir).expanduser())
    if config.server.models_dir:
        config.server.models_dir = str(base / Path(config.server.models_dir).expanduser())
    problems = _check_tls(config.server, base)
    available = devices()
    seen: set[str] = set()
    for index, model in enumerate(config.models):
        if model.id in seen:
            problems.append(f"$.models[{index}].id: duplicate model id {model.id!r}")
        seen.add(model.id)
        problems.extend(check_model(model, f"$.models[{index}]", base, available))
    if problems:
        raise ConfigError("\n".join(f"{path}: {problem}" for problem in problems))
    return config


def load_config(path: Path, devices: Callable[[], Sequence[str]] = available_devices) -> Config:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    return parse_config(text, path, devices)


_AT_PATH = re.compile(r"^(?P<what>.*) - at `(?P<path>[^`]*)`$")


def with_path(message: str) -> str:
    """msgspec says 'what - at `$.path`'; lead with the path, as every other config error does."""
    match = _AT_PATH.match(message)
    if match:
        return f"{match['path']}: {match['what']}"
    return f"$: {message}"
