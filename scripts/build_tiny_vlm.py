"""Build a tiny random-weight Qwen2-VL model as an OpenVINO IR folder, for the vision tests.

    python3 scripts/build_tiny_vlm.py     # -> models/tiny-qwen2-vl/

Nothing comes from the Hugging Face hub: the tokenizer is a small byte-level BPE trained here on a fixed text,
the weights are a seeded random init, and optimum-intel exports them the way users export real Qwen2-VL models
(`optimum-cli export openvino --task image-text-to-text --weight-format fp32`). The export tool chain (torch,
transformers, optimum-intel) is far too heavy for the runtime venv, so this script runs with any python3 >= 3.10:
it creates `.venv-fixtures` beside `.venv`, installs `scripts/requirements-fixtures.txt` into it and re-runs its
build step there. The result only needs the runtime's openvino-genai.

A no-op when the IR folder is complete. It is built in a temporary folder and renamed, so an interrupted run never
leaves a half model behind.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = ROOT / "models"
OUT = MODELS_DIR / "tiny-qwen2-vl"
VENV = ROOT / ".venv-fixtures"
REQUIREMENTS = Path(__file__).resolve().with_name("requirements-fixtures.txt")
STAMP = VENV / ".fixtures-installed"
# The files that make the folder a complete GenAI VLM: the four models of a Qwen2-VL export, the tokenizer pair
# and the configs GenAI reads (config.json for the model type, preprocessor_config.json for the image sizes).
IR_FILES = (
    "openvino_language_model.xml",
    "openvino_text_embeddings_model.xml",
    "openvino_vision_embeddings_model.xml",
    "openvino_vision_embeddings_merger_model.xml",
    "openvino_tokenizer.xml",
    "openvino_detokenizer.xml",
    "config.json",
    "preprocessor_config.json",
)

SEED = 0
# Qwen2-VL's added tokens, in the order (and so the relative ids) of the real Qwen2-VL tokenizer.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# Qwen2's pre-tokenizer split (tokenizer.json of every Qwen2 model).
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Qwen2-VL-*-Instruct's chat template: an image content part becomes <|vision_start|><|image_pad|><|vision_end|>.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# The text the BPE merges are learned from: any fixed text will do, it only has to give the tokenizer some words.
CORPUS = """\
You are a helpful assistant. Describe the image in one sentence. What is in this picture? What colour is it?
The picture shows a small red square on a white background, next to a blue circle and a green triangle.
There is a cat sitting on a wooden table near the window, and the sun is shining on the garden outside.
A photo of a dog running in the park. Two people are walking along the river at sunset. How many apples are there?
Count the objects, read the text, and answer the question. The answer is yes. The answer is no. I do not know.
Hello! How can I help you today? Please write a short story about a robot who learns to paint pictures.
The quick brown fox jumps over the lazy dog. Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000. Thank you very much.
"""
BPE_VOCAB = 1000
# 56x56 is the smallest image Qwen2-VL takes (4 merged tokens); bigger images are scaled down to at most 224x224
# worth of pixels (64 merged tokens), so every image stays cheap to encode.
MIN_PIXELS = 56 * 56
MAX_PIXELS = 224 * 224


def complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in IR_FILES)


def requirements_digest() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def ensure_venv() -> Path:
    """Create `.venv-fixtures` and install the pinned export tool chain into it, once per requirements file."""
    python = VENV / "bin" / "python"
    digest = requirements_digest()
    if python.is_file() and STAMP.is_file() and STAMP.read_text().strip() == digest:
        return python
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, stdout=sys.stderr)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
        check=True,
        stdout=sys.stderr,
    )
    STAMP.write_text(digest + "\n")
    return python


def train_tokenizer() -> Any:
    """A Qwen2-style byte-level BPE tokenizer (same pre-tokenizer and decoder) with Qwen2-VL's added tokens."""
    tokenizers = importlib.import_module("tokenizers")
    transformers = importlib.import_module("transformers")
    pre = tokenizers.pre_tokenizers
    backend = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    backend.normalizer = tokenizers.normalizers.NFC()
    backend.pre_tokenizer = pre.Sequence(
        [
            pre.Split(tokenizers.Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
            pre.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    backend.decoder = tokenizers.decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    backend.post_processor = tokenizers.processors.ByteLevel(
        add_prefix_space=False, trim_offsets=False, use_regex=False
    )
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=BPE_VOCAB,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre.ByteLevel.alphabet(),
        special_tokens=[],
    )
    backend.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    # Added here, not by the transformers wrapper, so that their ids follow SPECIAL_TOKENS' order.
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer = transformers.Qwen2TokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        clean_up_tokenization_spaces=False,
        model_max_length=32768,
        errors="replace",
        split_special_tokens=False,
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def readable_output_head(model: Any, tokenizer: Any, torch: Any) -> None:
    """Make greedy decoding pick only tokens that decode to printable ASCII, so that the random model writes text.

    Random weights would otherwise emit control bytes, halves of UTF-8 characters and special tokens. The rows of
    the output head of every other token are zeroed (logit 0 for any input), and the readable tokens' rows come in
    pairs (w, -w): one of each pair has a logit >= 0, so the best readable token always beats the zeroed ones.
    The model so never emits <|im_end|>: a request ends at its token limit or a stop string.
    """
    readable = []
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id])
        if text and text.isascii() and text.isprintable() and token_id not in tokenizer.all_special_ids:
            readable.append(token_id)
    with torch.no_grad():
        weight = model.lm_head.weight
        keep = torch.zeros(weight.shape[0], dtype=torch.bool)
        keep[readable[: len(readable) // 2 * 2]] = True
        weight[~keep] = 0.0
        weight[readable[1::2]] = -weight[readable[0::2][: len(readable) // 2]]


def build_source(src: Path) -> None:
    """Write a Hugging Face model folder (config, random weights, tokenizer, processor) for optimum to export."""
    torch = importlib.import_module("torch")
    transformers = importlib.import_module("transformers")
    torch.manual_seed(SEED)
    tokenizer = train_tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    # Hidden size 64 with 4 heads: head_dim 16, and M-RoPE's (temporal, height, width) sections cover its 8 pairs.
    config = transformers.Qwen2VLConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rope_theta=1000000.0,
        rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
        tie_word_embeddings=False,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": 64,
            "mlp_ratio": 2,
            "num_heads": 2,
            "in_channels": 3,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        torch_dtype="float32",
    )
    model = transformers.Qwen2VLForConditionalGeneration(config).eval()
    readable_output_head(model, tokenizer, torch)
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
        do_sample=False,
    )
    model.save_pretrained(src, safe_serialization=True)
    image_processor = transformers.Qwen2VLImageProcessor(
        min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, patch_size=14, temporal_patch_size=2, merge_size=2
    )
    tokenizer.save_pretrained(src)
    image_processor.save_pretrained(src)


def export(src: Path, out: Path) -> None:
    """`optimum-cli export openvino --task image-text-to-text --weight-format fp32 SRC OUT`, the users' way.

    It writes the four IR models, converts the tokenizer (chat template in the tokenizer IR's rt_info) with
    openvino-tokenizers, and copies config.json, generation_config.json and the tokenizer and image processor files.
    """
    subprocess.run(
        [
            str(Path(sys.executable).with_name("optimum-cli")),
            "export",
            "openvino",
            "--model",
            str(src),
            "--task",
            "image-text-to-text",
            "--weight-format",
            "fp32",
            str(out),
        ],
        check=True,
        stdout=sys.stderr,
    )


def build() -> None:
    """The build step, run inside `.venv-fixtures`."""
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=MODELS_DIR, prefix=".build-"))
    try:
        src, out = tmp / "hf", tmp / "ir"
        build_source(src)
        export(src, out)
        missing = [name for name in IR_FILES if not (out / name).is_file()]
        if missing:
            raise SystemExit(f"the export left out {', '.join(missing)}")
        if OUT.exists():
            shutil.rmtree(OUT)
        out.rename(OUT)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-step", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_step:
        build()
        return 0
    if not complete(OUT):
        MODELS_DIR.mkdir(parents=True, exist_ok=True)
        # One build at a time (parallel test workers): the others wait here, then find the folder complete.
        with (MODELS_DIR / ".tiny-qwen2-vl.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not complete(OUT):
                started = time.monotonic()
                python = ensure_venv()
                # Offline: everything is local, and optimum must not look anything up on the hub.
                env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
                subprocess.run(
                    [str(python), str(Path(__file__).resolve()), "--build-step"], check=True, env=env, stdout=sys.stderr
                )
                print(f"tiny-qwen2-vl: built in {time.monotonic() - started:.0f} s", file=sys.stderr)
    # The last line, and the only one on stdout: the folder, as `scripts/models.py` prints its models.
    print(f"tiny-qwen2-vl: {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
