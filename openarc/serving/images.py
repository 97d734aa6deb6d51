"""Images of chat requests: `data:` URLs and http(s) URLs → RGB uint8 pixels, decoded off the event loop.

Fetching is guarded against SSRF: only http and https, every address the host resolves to must be public (unless
the config allows private ones), redirects are followed by hand and checked the same way, and the body is read
within a size and a time limit. Decoding (Pillow) accepts PNG, JPEG, WebP and GIF (its first frame), refuses
images over the pixel limit before decoding them, and scales down images whose longer side is over the limit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import ipaddress
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
# ImageLimits.max_pixels is checked on the header, before decoding. Pillow's own check would raise (a 500) or
# warn on headers above ~89M pixels before that check could refuse them with a 400 naming the limit.
Image.MAX_IMAGE_PIXELS = None
_MAX_REDIRECTS = 5
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_side: int = 2048
    fetch_timeout: float = 10.0
    allow_private_urls: bool = False


@dataclass(frozen=True)
class DecodedImage:
    """Row-major RGB pixels, height x width x 3 bytes."""

    pixels: bytes
    width: int
    height: int


class ImageError(ValueError):
    """The image cannot be used; the message says why, for the client."""


async def load_image(url: str, limits: ImageLimits) -> DecodedImage:
    """Fetch or unpack, then decode, in a worker thread: the event loop never blocks on an image."""
    return await asyncio.to_thread(_load, url, limits)


def _load(url: str, limits: ImageLimits) -> DecodedImage:
    if url.startswith("data:"):
        data = _data_url(url, limits)
    elif url.startswith(("http://", "https://")):
        data = _fetch(url, limits)
    else:
        raise ImageError("image_url must be a data: URL or an http(s) URL")
    return decode(data, limits)


def _data_url(url: str, limits: ImageLimits) -> bytes:
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise ImageError("a data: image URL must be base64, like data:image/png;base64,...")
    if len(payload) * 3 // 4 > limits.max_bytes:
        raise ImageError(f"the image is larger than the {limits.max_bytes} bytes this server accepts")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("the data: URL is not valid base64") from None


def decode(data: bytes, limits: ImageLimits) -> DecodedImage:
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise ImageError(f"unsupported or corrupt image: send {', '.join(FORMATS[:-1])} or GIF") from None
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageError(f"the image has {width}x{height} pixels, more than the {limits.max_pixels} accepted")
    try:
        image.seek(0)  # a GIF's first frame
        rgb = image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise ImageError(f"the image cannot be decoded: {exc}") from None
    longer = max(rgb.size)
    if longer > limits.max_side:
        scale = limits.max_side / longer
        rgb = rgb.resize(
            (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.Resampling.BICUBIC
        )
    return DecodedImage(rgb.tobytes(), rgb.width, rgb.height)


def _check_host(url: str, limits: ImageLimits) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImageError(f"image URL {url!r} is not an http(s) URL")
    if limits.allow_private_urls:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except socket.gaierror as exc:
        raise ImageError(f"cannot resolve the image URL's host {parts.hostname!r}: {exc.strerror}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise ImageError(
                f"image URL host {parts.hostname!r} is a private or local address ({address}); "
                "this server does not fetch those (server.allow_private_image_urls)"
            )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # followed by hand, so that every hop is checked


_opener = urllib.request.build_opener(_NoRedirects)


def _fetch(url: str, limits: ImageLimits) -> bytes:
    deadline = time.monotonic() + limits.fetch_timeout
    for _ in range(_MAX_REDIRECTS + 1):
        _check_host(url, limits)
        request = urllib.request.Request(url, headers={"User-Agent": "openarc"})
        try:
            with _opener.open(request, timeout=max(0.1, deadline - time.monotonic())) as response:
                return _read(response, url, limits, deadline)
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the response's socket
            location = exc.headers.get("Location") if 300 <= exc.code < 400 else None
            if location is None:
                raise ImageError(f"fetching the image URL failed: the server answered {exc.code}") from None
            url = urllib.parse.urljoin(url, location)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ImageError(f"fetching the image URL failed: {reason}") from None
    raise ImageError(f"the image URL redirected more than {_MAX_REDIRECTS} times")


def _read(response: object, url: str, limits: ImageLimits, deadline: float) -> bytes:
    length = getattr(response, "headers", {}).get("Content-Length")
    if length is not None and length.isdigit() and int(length) > limits.max_bytes:
        raise ImageError(f"the image is larger than the {limits.max_bytes} bytes this server accepts")
    chunks, size = [], 0
    while chunk := response.read(_CHUNK):  # type: ignore[attr-defined]
        size += len(chunk)
        if size > limits.max_bytes:
            raise ImageError(f"the image is larger than the {limits.max_bytes} bytes this server accepts")
        if time.monotonic() > deadline:
            raise ImageError(f"fetching the image URL took longer than {limits.fetch_timeout:g} s")
        chunks.append(chunk)
    return b"".join(chunks)
