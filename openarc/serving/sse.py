"""Server-sent event frames."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from openarc.protocol.base import ErrorBody, ErrorResponse

DONE = b"data: [DONE]\n\n"
_encoder = msgspec.json.Encoder()


def event(payload: msgspec.Struct) -> bytes:
    return b"data: " + _encoder.encode(payload) + b"\n\n"


# Stands for the varying string of a pre-encoded event (see `template`).
SLOT = "\u0000openarc-slot\u0000"
_ENCODED_SLOT = _encoder.encode(SLOT)


def template(encoded_event: bytes) -> Callable[[str], bytes]:
    """Turn an event encoded with `SLOT` as one string into a filler: text → the same event with that text.

    Per token this is one string encode and two concatenations instead of building and encoding Structs;
    the bytes are exactly what encoding the whole payload would give.
    """
    head, tail = encoded_event.split(_ENCODED_SLOT)

    def fill(text: str) -> bytes:
        return head + _encoder.encode(text) + tail

    return fill


def error_event(message: str, type: str = "server_error", code: str | None = "engine_error") -> bytes:
    """A mid-stream failure: the status is already 200, so the error travels as an event (then [DONE])."""
    return event(ErrorResponse(error=ErrorBody(message=message, type=type, param=None, code=code)))
