"""Images for vlm models: IPC bytes → OpenVINO tensors, and how many prompt tokens each image becomes.

GenAI expands each `<ov_genai_image_N>` tag into the model's vision tokens inside `add_request` and does not report
the prompt's final length, so the count is computed here from the model's preprocessor_config.json. Qwen2-VL and
Qwen2.5-VL (`smart_resize`: the image is resized to multiples of patch_size x merge_size within min/max pixels, and
each merge_size x merge_size block of patches is one token) are counted exactly; other families count as their text.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import openvino

from openarc.ipc import ImageData

TAG = re.compile(r"<ov_genai_image_\d+>")
# What a Qwen2-VL tag becomes around its image tokens.
QWEN_VISION_WRAP = "<|vision_start|><|vision_end|>"


def tensor(image: ImageData) -> Any:
    pixels = np.frombuffer(image.pixels, dtype=np.uint8).reshape(1, image.height, image.width, 3)
    return openvino.Tensor(pixels)


class ImageTokenCounter:
    def __init__(self, folder: Path) -> None:
        config_path = folder / "preprocessor_config.json"
        config: dict[str, Any] = json.loads(config_path.read_text()) if config_path.is_file() else {}
        self.patch = int(config.get("patch_size", 14))
        self.merge = int(config.get("merge_size", 2))
        size = config.get("size") or {}
        self.min_pixels = int(config.get("min_pixels") or size.get("shortest_edge") or 56 * 56)
        self.max_pixels = int(config.get("max_pixels") or size.get("longest_edge") or 28 * 28 * 1280)
        self.qwen = "Qwen2VLImageProcessor" in str(config.get("image_processor_type", "")) or (
            "merge_size" in config and "temporal_patch_size" in config
        )

    def count(self, image: ImageData) -> int:
        if not self.qwen:
            return 0
        height, width = self._smart_resize(image.height, image.width)
        return (height // self.patch) * (width // self.patch) // (self.merge * self.merge)

    def _smart_resize(self, height: int, width: int) -> tuple[int, int]:
        factor = self.patch * self.merge
        h_bar = max(factor, round(height / factor) * factor)
        w_bar = max(factor, round(width / factor) * factor)
        if h_bar * w_bar > self.max_pixels:
            beta = math.sqrt(height * width / self.max_pixels)
            h_bar = max(factor, math.floor(height / beta / factor) * factor)
            w_bar = max(factor, math.floor(width / beta / factor) * factor)
        elif h_bar * w_bar < self.min_pixels:
            beta = math.sqrt(self.min_pixels / (height * width))
            h_bar = math.ceil(height * beta / factor) * factor
            w_bar = math.ceil(width * beta / factor) * factor
        return h_bar, w_bar

    def text_for_counting(self, prompt: str) -> str:
        """The prompt as the tokenizer should count it: each tag as what it becomes, minus the image tokens."""
        return TAG.sub(QWEN_VISION_WRAP if self.qwen else "", prompt)
