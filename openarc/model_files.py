"""What a model's files say about it without compiling it: the GGUF header or config.json, its context length."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, BinaryIO

_GGUF_MAGIC = b"GGUF"
# GGUF value types: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
# Arrays longer than this (the tokenizer's vocabulary, merges, scores) are summarised by their length.
_MAX_KEPT_ARRAY = 64


class UnreadableModel(ValueError):
    pass


def _read(fh: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise UnreadableModel("truncated GGUF header")
    return struct.unpack(fmt, data)[0]


def _read_string(fh: BinaryIO) -> str:
    length = _read(fh, "<Q")
    return fh.read(length).decode("utf-8", errors="replace")


def _read_value(fh: BinaryIO, kind: int) -> Any:
    if kind in _SCALARS:
        return _read(fh, _SCALARS[kind])
    if kind == _STRING:
        return _read_string(fh)
    if kind == _ARRAY:
        item_kind, count = _read(fh, "<I"), _read(fh, "<Q")
        items = [_read_value(fh, item_kind) for _ in range(count)]
        return items if count <= _MAX_KEPT_ARRAY else {"array_length": count}
    raise UnreadableModel(f"unknown GGUF value type {kind}")


def read_gguf_metadata(path: Path) -> dict[str, Any]:
    """The key/value section of a GGUF file (v2 and v3), long arrays as {"array_length": n}."""
    with path.open("rb") as fh:
        if fh.read(4) != _GGUF_MAGIC:
            raise UnreadableModel(f"{path} is not a GGUF file")
        version = _read(fh, "<I")
        if version < 2:
            raise UnreadableModel(f"{path}: GGUF version {version} is not supported")
        _tensor_count, kv_count = _read(fh, "<Q"), _read(fh, "<Q")
        metadata: dict[str, Any] = {"gguf.version": version}
        for _ in range(kv_count):
            key = _read_string(fh)
            metadata[key] = _read_value(fh, _read(fh, "<I"))
        return metadata


def context_length(source: Path) -> int | None:
    """The model's maximum sequence length, or None when its files do not say."""
    if source.is_file():
        meta = read_gguf_metadata(source)
        value = meta.get(f"{meta.get('general.architecture')}.context_length")
        return int(value) if value else None
    config = source / "config.json"
    if not config.is_file():
        return None
    data = json.loads(config.read_text())
    data = data.get("text_config", data)
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(data.get(key), int):
            return int(data[key])
    return None


def architecture(source: str) -> dict[str, Any]:
    """The model's architecture facts: the GGUF header (tokenizer arrays summarised) or config.json."""
    path = Path(source)
    if path.is_file():
        metadata = read_gguf_metadata(path)
        # The chat template is reported with the tokenizer facts; keep the header readable.
        metadata.pop("tokenizer.chat_template", None)
        return {"format": "gguf", "metadata": metadata}
    config = path / "config.json"
    return {"format": "openvino_ir", "config": json.loads(config.read_text()) if config.is_file() else None}
