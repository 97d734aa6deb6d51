"""Everything the worker asks of OpenVINO GenAI: build the pipeline, render and tokenize prompts, map sampling."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import openvino_genai

from openarc.config import VLM_MARKER
from openarc.ipc import ChatPrompt, LoadModel, SamplingParams, TextPrompt
from openarc.model_files import context_length
from openarc.worker.token_bytes import token_bytes
from openarc.worker.vision import TAG, ImageTokenCounter, tensor

# When neither the request, the model's defaults nor its files bound the output, stop here.
FALLBACK_MAX_TOKENS = 4096
_SEED_SPACE = 2**64
# Below this a temperature is greedy decoding (vLLM's rule); GenAI's float32 would round the tiniest to 0.
_GREEDY_TEMPERATURE = 1e-5
# The smallest top_p / repetition_penalty that survives float32 in GenAI; smaller ones mean the same.
_SMALLEST_POSITIVE = 1e-30
# Enough of a rendered prompt's end to see a `<think>` opened for the model.
_PROMPT_TAIL_CHARS = 64
# How far to look for a tokenizer's own length limit when the model's files state no context length.
_PROBE_TOKENS = 32768


class PromptRejected(Exception):
    """The request cannot be run as asked (too long, template failure); the message is for the client."""


class ContextTooLong(PromptRejected):
    """The prompt, or the prompt plus the completion asked for, does not fit the model's context."""


def _token_id(value: int) -> int | None:
    # GenAI writes "unset" as -1 or as SIZE_MAX.
    return None if value < 0 or value >= 2**63 else int(value)


def genai_message(exc: Exception) -> str:
    """GenAI's own sentence, without its "Check '...' failed at <build path>:<line>:" preamble."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Check "):
        lines = lines[1:]
    return " ".join(lines)


def truncation_limit(tokenizer: Any, context_length: int | None) -> int | None:
    """The length at which `tokenizer` cuts every input, if it cuts inputs no longer than the model's context + 1.

    Tokenizers built from GGUF files cut inputs at a length fixed inside the tokenizer model (SmolLM2's: 8192),
    whatever `truncation=False` says: a 20,000-token prompt comes back as its first 8,192 tokens. So a prompt that
    reaches this length may have been cut and its true length is unknown. Found by encoding n and 2n words (each
    at least one token): an input that stops growing was cut.
    """
    words = (context_length or _PROBE_TOKENS) + 1
    shorter = int(tokenizer.encode(" a" * words, add_special_tokens=False).input_ids.get_shape()[1])
    longer = int(tokenizer.encode(" a" * (2 * words), add_special_tokens=False).input_ids.get_shape()[1])
    return shorter if shorter == longer else None


def checked_length(input_ids: Any, limit: int | None, context_length: int | None) -> int:
    """A tokenized prompt's length; refused when the tokenizer may have cut it (see `truncation_limit`)."""
    length = int(input_ids.get_shape()[1])
    if limit is None or length < limit:
        return length
    if context_length is not None and limit >= context_length:
        raise ContextTooLong(
            f"This model's maximum context length is {context_length} tokens. However, your prompt has at least "
            f"{limit} tokens. Please reduce the length of the prompt."
        )
    raise ContextTooLong(
        f"This model's tokenizer reads at most {limit} tokens, and your prompt has at least {limit}: it would be "
        "cut. Please reduce the length of the prompt."
    )


def _template_error(exc: Exception) -> str:
    """The template's own words (e.g. its raise_exception message), without GenAI's advice and source path."""
    message = str(exc)
    _, found, detail = message.partition("Minja's error: ")
    return detail.split(" at row ", 1)[0].strip() if found else message


class ModelRunner:
    """A loaded model: the pipeline plus the facts needed to turn requests into GenAI calls."""

    def __init__(self, spec: LoadModel) -> None:
        scheduler = openvino_genai.SchedulerConfig()
        for key, value in spec.scheduler.items():
            setattr(scheduler, key, value)
        properties = dict(spec.properties)
        self.speculative = spec.speculative
        if spec.speculative is not None and spec.speculative.draft_source is not None:
            properties["draft_model"] = openvino_genai.draft_model(
                spec.speculative.draft_source, spec.speculative.draft_device
            )
        elif spec.speculative is not None and spec.speculative.prompt_lookup:
            properties["prompt_lookup"] = True
        self.pipeline = openvino_genai.ContinuousBatchingPipeline(spec.source, scheduler, spec.device, properties)
        self.tokenizer = self.pipeline.get_tokenizer()
        # None: this vocabulary is not plain byte-level BPE, and output text comes from the tokenizer's decode.
        self.token_bytes = token_bytes(self.tokenizer)
        folder = Path(spec.source)
        # GenAI's continuous batching takes images when the folder holds the text-embeddings model (a VLM export).
        self.is_vlm = folder.is_dir() and (folder / VLM_MARKER).is_file()
        self.image_tokens = ImageTokenCounter(folder) if self.is_vlm else None
        self.chat_template = spec.chat_template or ""
        self.context_length = context_length(Path(spec.source))
        self.truncation_limit = truncation_limit(self.tokenizer, self.context_length)
        base = self.pipeline.get_config()
        self._eos_token_id = base.eos_token_id
        self._stop_token_ids = set(base.stop_token_ids)
        # Tokens that end a sequence: GenAI reports them among the generated ids, and they are never text.
        self.end_token_ids = frozenset({self._eos_token_id, *self._stop_token_ids})

    def tokenizer_facts(self) -> dict[str, Any]:
        t = self.tokenizer
        try:
            # get_vocab_vector() fails on byte-level tokens that are not UTF-8 (GGUF vocabularies); the dict does not.
            vocab_size: int | None = len(t.get_vocab())
        except Exception:
            vocab_size = None
        return {
            "vocab_size": vocab_size,
            "bos_token": t.get_bos_token() or None,
            "bos_token_id": _token_id(t.get_bos_token_id()),
            "eos_token": t.get_eos_token() or None,
            "eos_token_id": _token_id(t.get_eos_token_id()),
            "pad_token": t.get_pad_token() or None,
            "pad_token_id": _token_id(t.get_pad_token_id()),
            "stop_token_ids": sorted(self._stop_token_ids),
        }

    def generation_defaults(self) -> dict[str, Any]:
        """The model's generation_config.json (GenAI's view): unset integers read as "unlimited" there."""
        base = self.pipeline.get_config()
        return {
            "max_new_tokens": _token_id(base.max_new_tokens),
            "do_sample": base.do_sample,
            "temperature": base.temperature,
            "top_p": base.top_p,
            "top_k": _token_id(base.top_k),
            "repetition_penalty": base.repetition_penalty,
        }

    def encode_vlm(self, prompt: ChatPrompt | TextPrompt) -> tuple[str, list[Any], int, str | None]:
        """A vlm request: the rendered prompt (image tags in place), the image tensors, the prompt's length in tokens
        with the images counted, and the tail if asked for. GenAI's vlm batching takes prompts as text."""
        assert self.image_tokens is not None
        if isinstance(prompt, TextPrompt):
            if TAG.search(prompt.text):
                raise PromptRejected("a completions prompt cannot carry image tags; send images to chat completions")
            counted = self.tokenizer.encode(prompt.text, add_special_tokens=True)
            return prompt.text, [], self._length(counted.input_ids), None
        tags = len(TAG.findall(" ".join(str(m.get("content", "")) for m in prompt.messages)))
        if tags != len(prompt.images):
            raise PromptRejected(f"the messages place {tags} images but {len(prompt.images)} were sent")
        text = self._render(prompt)
        counted = self.tokenizer.encode(self.image_tokens.text_for_counting(text), add_special_tokens=False)
        tokens = self._length(counted.input_ids) + sum(self.image_tokens.count(i) for i in prompt.images)
        tail = text[-_PROMPT_TAIL_CHARS:] if prompt.report_tail else None
        return text, [tensor(image) for image in prompt.images], tokens, tail

    def encode(self, prompt: ChatPrompt | TextPrompt) -> tuple[Any, int, str | None]:
        """The prompt as an input_ids tensor of shape [1, n], n, and the rendered chat prompt's tail if asked for."""
        if isinstance(prompt, TextPrompt):
            input_ids = self.tokenizer.encode(prompt.text, add_special_tokens=True).input_ids
            return input_ids, self._length(input_ids), None
        text = self._render(prompt)
        tail = text[-_PROMPT_TAIL_CHARS:] if prompt.report_tail else None
        # The template already wrote the special tokens (BOS and role markers) as text.
        input_ids = self.tokenizer.encode(text, add_special_tokens=False).input_ids
        return input_ids, self._length(input_ids), tail

    def _length(self, input_ids: Any) -> int:
        return checked_length(input_ids, self.truncation_limit, self.context_length)

    def _render(self, prompt: ChatPrompt) -> str:
        try:
            text: str = self.tokenizer.apply_chat_template(
                prompt.messages,
                add_generation_prompt=True,
                chat_template=self.chat_template,
                tools=prompt.tools,
                extra_context=prompt.template_kwargs,
            )
        except Exception as exc:
            raise PromptRejected(f"the chat template rejected the messages: {_template_error(exc)}") from None
        return text

    def check_prompt(self, prompt_tokens: int) -> None:
        if prompt_tokens == 0:
            raise PromptRejected("The prompt is empty: it has no tokens to complete.")

    def max_new_tokens(self, prompt_tokens: int, requested: int | None, cap: int | None = None) -> int:
        """The completion's budget: the client's own `requested` must fit the context; with none, the room left,
        never more than the server's `cap` (a model default or limit the client did not ask for)."""
        if self.context_length is None:
            return requested or cap or FALLBACK_MAX_TOKENS
        room = self.context_length - prompt_tokens
        if requested is None:
            if room < 1:
                raise ContextTooLong(
                    f"This model's maximum context length is {self.context_length} tokens. "
                    f"However, your prompt is {prompt_tokens} tokens, leaving no room for a completion."
                )
            return room if cap is None else min(room, cap)
        if requested > room:
            raise ContextTooLong(
                f"This model's maximum context length is {self.context_length} tokens. However, you requested "
                f"{prompt_tokens + requested} tokens ({prompt_tokens} in the prompt, {requested} for the "
                f"completion). Please reduce the length of the prompt or the completion."
            )
        return requested

    def generation_config(self, params: SamplingParams, max_new_tokens: int) -> Any:
        config = openvino_genai.GenerationConfig()
        config.eos_token_id = self._eos_token_id
        config.stop_token_ids = self._stop_token_ids
        config.max_new_tokens = max_new_tokens
        config.ignore_eos = params.ignore_eos
        if params.temperature >= _GREEDY_TEMPERATURE:
            config.do_sample = True
            config.temperature = params.temperature
            config.top_p = max(params.top_p, _SMALLEST_POSITIVE)
            if params.top_k > 0:
                config.top_k = params.top_k
            config.min_p = params.min_p
            # GenAI seeds every request with 0 by default: unseeded requests would all sample alike.
            seed = params.seed if params.seed is not None else random.getrandbits(63)
            config.rng_seed = seed % _SEED_SPACE
        config.presence_penalty = params.presence_penalty
        config.frequency_penalty = params.frequency_penalty
        config.repetition_penalty = max(params.repetition_penalty, _SMALLEST_POSITIVE)
        if params.stop:
            # Stop strings are cut from the text by TextOutput; GenAI only ends generation early.
            config.stop_strings = set(params.stop)
            config.include_stop_str_in_output = True
        if params.json_schema is not None:
            config.structured_output_config = openvino_genai.StructuredOutputConfig(json_schema=params.json_schema)
        if params.logprobs:
            # GenAI reports the chosen token's logprob only when asked for at least one (greedy included).
            config.logprobs = 1
        speculative = self.speculative
        if speculative is not None:
            if speculative.num_assistant_tokens is not None:
                config.num_assistant_tokens = speculative.num_assistant_tokens
            if speculative.assistant_confidence_threshold is not None:
                config.assistant_confidence_threshold = speculative.assistant_confidence_threshold
            if speculative.max_ngram_size is not None:
                config.max_ngram_size = speculative.max_ngram_size
        # The prompt arrives rendered: GenAI must not apply the chat template to it again.
        config.apply_chat_template = False
        try:
            config.validate()
        except Exception as exc:
            raise PromptRejected(f"invalid sampling parameters: {genai_message(exc)}") from None
        return config
