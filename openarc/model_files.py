"""Architecture metadata of a model source, read from its files: `config.json` of an IR folder, or a GGUF header."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, BinaryIO

_GGUF_MAGIC = b"GGUF"
# GGUF value types: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
# Arrays longer than this (the vocabulary, merges, scores) are summarised by their length.
_ARRAY_LIMIT = 64


class UnreadableModel(ValueError):
    pass


def _read(f: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise UnreadableModel("the GGUF header ends early")
    return struct.unpack(fmt, data)[0]


def _string(f: BinaryIO) -> str:
    length = _read(f, "<Q")
    data = f.read(length)
    if len(data) != length:
        raise UnreadableModel("the GGUF header ends early")
    return data.decode("utf-8", errors="replace")


def _value(f: BinaryIO, kind: int) -> Any:
    if kind in _SCALARS:
        return _read(f, _SCALARS[kind])
    if kind == _STRING:
        return _string(f)
    if kind == _ARRAY:
        item_kind, count = _read(f, "<I"), _read(f, "<Q")
        items = [_value(f, item_kind) for _ in range(count)]
        return items if count <= _ARRAY_LIMIT else {"array_length": count}
    raise UnreadableModel(f"unknown GGUF value type {kind}")


def gguf_metadata(path: Path) -> dict[str, Any]:
    """Every key-value pair of a GGUF header (long arrays as their length)."""
    with path.open("rb") as f:
        if f.read(4) != _GGUF_MAGIC:
            raise UnreadableModel(f"{path} is not a GGUF file")
        version = _read(f, "<I")
        _tensors, count = _read(f, "<Q"), _read(f, "<Q")
        metadata: dict[str, Any] = {"gguf.version": version}
        for _ in range(count):
            key = _string(f)
            metadata[key] = _value(f, _read(f, "<I"))
    return metadata


def architecture(source: str) -> dict[str, Any]:
    """The model's architecture facts: the GGUF header (tokenizer arrays summarised) or config.json."""
    path = Path(source)
    if path.is_file():
        metadata = gguf_metadata(path)
        # The chat template is reported with the tokenizer facts; keep the header readable.
        metadata.pop("tokenizer.chat_template", None)
        return {"format": "gguf", "metadata": metadata}
    config = path / "config.json"
    return {"format": "openvino_ir", "config": json.loads(config.read_text()) if config.is_file() else None}
