"""Vision-language serving with a tiny random-weight Qwen2-VL (built by scripts/build_tiny_vlm.py): images in the
continuous batch beside text, prompt_tokens with the image tokens, and every bad image a clear 400."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import openvino
import openvino_genai
import pytest
from PIL import Image

from tests.server import Server, free_port, run_server, write_config
from tests.static_server import Answer, serving


def png(size: tuple[int, int] = (56, 56), seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def ask(url: str, text: str = "What is in this picture?") -> Any:
    return [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}]}
    ]


@pytest.fixture(scope="module")
def image_host() -> Iterator[str]:
    with serving({"/cat.png": Answer(body=png((64, 48), seed=3))}) as url:
        yield url


@pytest.fixture(scope="module")
def vlm_server(tiny_vlm: Path, smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The default config: private and loopback image URLs are refused; small byte limit for the oversize test."""
    tmp = tmp_path_factory.mktemp("vlm")
    models = [{"id": "vlm", "source": str(tiny_vlm)}, {"id": "text", "source": str(smollm2_gguf)}]
    config = write_config(tmp / "config.yaml", models, {"max_image_bytes": 200_000})
    with run_server(config, tmp) as server:
        yield server


def test_vlm_is_detected_and_image_requests_succeed_streaming_and_not(vlm_server: Server, tiny_vlm: Path) -> None:
    assert vlm_server.status()["vlm"]["task"] == "vlm"
    client = vlm_server.client()
    image = data_url(png())
    with_image = client.chat.completions.create(model="vlm", messages=ask(image), max_tokens=8, temperature=0)
    assert with_image.choices[0].finish_reason in ("stop", "length")
    assert with_image.usage is not None and with_image.usage.completion_tokens >= 1
    without = client.chat.completions.create(
        model="vlm", messages=[{"role": "user", "content": "What is in this picture?"}], max_tokens=8
    )
    assert without.usage is not None

    # GenAI's own count of the same prompt and image is the truth for prompt_tokens.
    pipe = openvino_genai.VLMPipeline(str(tiny_vlm), "CPU")
    pixels = np.asarray(Image.open(io.BytesIO(png())).convert("RGB"))[None]
    rendered = pipe.get_tokenizer().apply_chat_template(
        [{"role": "user", "content": "<ov_genai_image_0>What is in this picture?"}], add_generation_prompt=True
    )
    config = openvino_genai.GenerationConfig()
    config.max_new_tokens = 1
    config.apply_chat_template = False
    result = pipe.generate(rendered, images=[openvino.Tensor(pixels)], generation_config=config)
    assert with_image.usage.prompt_tokens == result.perf_metrics.get_num_input_tokens()
    assert with_image.usage.prompt_tokens > without.usage.prompt_tokens

    stream = client.chat.completions.create(
        model="vlm",
        messages=ask(image),
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == with_image.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == with_image.usage.prompt_tokens


def test_images_and_text_share_the_batch(vlm_server: Server) -> None:
    async def run() -> list[str]:
        async with vlm_server.async_client() as client:

            async def one(i: int) -> str:
                messages: Any = ask(data_url(png(seed=i))) if i % 2 else [{"role": "user", "content": f"Say {i}."}]
                response = await client.chat.completions.create(
                    model="vlm", messages=messages, max_tokens=16, extra_body={"ignore_eos": True}
                )
                return response.choices[0].finish_reason or ""

            return await asyncio.gather(*(one(i) for i in range(8)))

    assert asyncio.run(run()) == ["length"] * 8
    replica = vlm_server.status()["vlm"]["replicas"][0]
    assert replica["max_batch"] >= 2
    # The vision encoder's time inside add_request is measured (the worker is held for it).
    assert replica["max_vision_ms"] > 0


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("data:image/png;base64,%%%corrupt%%%", "not valid base64"),
        (data_url(b"BM" + b"\0" * 64, "image/bmp"), "unsupported or corrupt image"),
        (data_url(png((400, 400))), "larger than the 200000 bytes"),
        ("http://10.0.0.7/cat.png", "private or local address"),
        ("http://127.0.0.1:9/cat.png", "private or local address"),
    ],
)
def test_bad_images_are_400s_and_the_server_keeps_serving(vlm_server: Server, url: str, fragment: str) -> None:
    client = vlm_server.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="vlm", messages=ask(url), max_tokens=4)
    body: Any = caught.value.body
    assert body["param"] == "messages[0].content[0].image_url"
    assert body["code"] == "invalid_image"
    assert fragment in body["message"]
    assert client.chat.completions.create(model="vlm", messages=ask(data_url(png())), max_tokens=2).choices


def test_text_model_refuses_images(vlm_server: Server) -> None:
    with pytest.raises(openai.BadRequestError, match="does not accept images"):
        vlm_server.client().chat.completions.create(model="text", messages=ask(data_url(png())), max_tokens=2)


def test_http_image_urls_when_the_config_allows_loopback(tiny_vlm: Path, image_host: str, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.yaml", [{"id": "vlm", "source": str(tiny_vlm)}], {"allow_private_image_urls": True}
    )
    with run_server(config, tmp_path) as server:
        client = server.client()
        answer = client.chat.completions.create(model="vlm", messages=ask(f"{image_host}/cat.png"), max_tokens=4)
        assert answer.choices[0].message.content is not None
        stream = client.chat.completions.create(
            model="vlm", messages=ask(f"{image_host}/cat.png"), max_tokens=4, stream=True
        )
        assert [c for c in stream if c.choices and c.choices[0].finish_reason]
        for url, fragment in (
            (f"http://127.0.0.1:{free_port()}/x.png", "fetching the image URL failed"),
            (f"{image_host}/missing.png", "answered 404"),
        ):
            with pytest.raises(openai.BadRequestError, match=fragment):
                client.chat.completions.create(model="vlm", messages=ask(url), max_tokens=2)
        # Images in an earlier turn and two in one message reach the template in place.
        two: Any = [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"{image_host}/cat.png"}}]},
            {"role": "assistant", "content": "A picture."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "And these?"},
                    {"type": "image_url", "image_url": {"url": data_url(png(seed=5))}},
                    {"type": "image_url", "image_url": {"url": data_url(png(seed=6))}},
                ],
            },
        ]
        three = client.chat.completions.create(model="vlm", messages=two, max_tokens=2)
        text_only: Any = [
            {"role": "user", "content": ""},
            {"role": "assistant", "content": "A picture."},
            {"role": "user", "content": "And these?"},
        ]
        none = client.chat.completions.create(model="vlm", messages=text_only, max_tokens=2)
        assert three.usage is not None and none.usage is not None
        # Each of these small images is 2x2 merged patches, between <|vision_start|> and <|vision_end|>.
        assert three.usage.prompt_tokens - none.usage.prompt_tokens == 3 * (4 + 2)
