"""Image inputs: data URLs, fetching with SSRF guards and limits, decoding (no engine needed)."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import struct
import zlib
from collections.abc import Iterator

import pytest
from PIL import Image

from openarc.serving.images import DecodedImage, ImageError, ImageLimits, decode, load_image
from tests.server import free_port
from tests.static_server import Answer, serving

LOCAL = ImageLimits(allow_private_urls=True, fetch_timeout=5)


def encoded(fmt: str, size: tuple[int, int] = (20, 10), color: tuple[int, int, int] = (200, 30, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=fmt)
    return out.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that states its size and holds no pixel data: tiny on the wire, huge once decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


DEFAULT = ImageLimits()


def load(url: str, limits: ImageLimits = DEFAULT) -> DecodedImage:
    return asyncio.run(load_image(url, limits))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_supported_formats_decode_to_rgb(fmt: str) -> None:
    image = load(data_url(encoded(fmt)))
    assert (image.width, image.height) == (20, 10)
    assert len(image.pixels) == 20 * 10 * 3
    red, green, blue = image.pixels[:3]
    assert red > 150 and green < 80 and blue < 80


def test_gif_first_frame_and_downscaling() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((0, 0, 255), (255, 0, 0))]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    first = decode(out.getvalue(), ImageLimits())
    assert first.pixels[2] > 200 and first.pixels[0] < 50
    big = decode(encoded("PNG", (400, 100)), ImageLimits(max_side=100))
    assert (big.width, big.height) == (100, 25)


@pytest.mark.parametrize(
    ("url", "limits", "fragment"),
    [
        ("data:image/png;base64,@@@not-base64@@@", ImageLimits(), "not valid base64"),
        ("data:image/png,rawdata", ImageLimits(), "must be base64"),
        (data_url(b"just some text"), ImageLimits(), "unsupported or corrupt image"),
        (data_url(encoded("BMP"), "image/bmp"), ImageLimits(), "unsupported or corrupt image"),
        (data_url(encoded("PNG")), ImageLimits(max_bytes=10), "larger than the 10 bytes"),
        (data_url(encoded("PNG", (100, 100))), ImageLimits(max_pixels=5000), "more than the 5000 accepted"),
        # Beyond where Pillow warns (~89M pixels) and where it raises (~179M): still our 400, not a 500.
        (data_url(png_header(10_000, 10_000)), ImageLimits(), "10000x10000 pixels, more than the 40000000"),
        (data_url(png_header(20_000, 20_000)), ImageLimits(), "20000x20000 pixels, more than the 40000000"),
        (data_url(png_header(30, 30)), ImageLimits(), "cannot be decoded"),
        ("ftp://example.com/a.png", ImageLimits(), "data: URL or an http(s) URL"),
        ("http://127.0.0.1:9/a.png", ImageLimits(), "private or local address"),
        ("http://10.1.2.3/a.png", ImageLimits(), "private or local address"),
        ("http://[::1]/a.png", ImageLimits(), "private or local address"),
        ("http://169.254.169.254/latest/meta-data", ImageLimits(), "private or local address"),
    ],
)
def test_bad_images_are_refused_with_a_reason(url: str, limits: ImageLimits, fragment: str) -> None:
    with pytest.raises(ImageError, match=re.escape(fragment)):
        load(url, limits)


@pytest.fixture()
def image_server() -> Iterator[str]:
    routes = {
        "/cat.png": Answer(body=encoded("PNG")),
        "/hop": Answer(302, headers={"Location": "/cat.png"}),
        "/huge": Answer(headers={"Content-Length": str(10**9)}),
    }
    with serving(routes) as url:
        yield url


def test_fetching_when_the_config_allows_loopback(image_server: str) -> None:
    assert load(f"{image_server}/cat.png", LOCAL).width == 20
    assert load(f"{image_server}/hop", LOCAL).width == 20
    with pytest.raises(ImageError, match="answered 404"):
        load(f"{image_server}/missing.png", LOCAL)
    with pytest.raises(ImageError, match="larger than"):
        load(f"{image_server}/huge", LOCAL)
    with pytest.raises(ImageError, match="fetching the image URL failed"):
        load(f"http://127.0.0.1:{free_port()}/closed.png", LOCAL)
    # The default config refuses the same loopback URL before connecting.
    with pytest.raises(ImageError, match="private or local address"):
        load(f"{image_server}/cat.png")
