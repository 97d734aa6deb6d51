"""Server-sent event frames."""

from __future__ import annotations

import msgspec

from openarc.protocol.base import ErrorBody, ErrorResponse

DONE = b"data: [DONE]\n\n"
_encoder = msgspec.json.Encoder()


def event(payload: msgspec.Struct) -> bytes:
    return b"data: " + _encoder.encode(payload) + b"\n\n"


def error_event(message: str, type: str = "server_error", code: str | None = "engine_error") -> bytes:
    """A mid-stream failure: the status is already 200, so the error travels as an event (then [DONE])."""
    return event(ErrorResponse(error=ErrorBody(message=message, type=type, param=None, code=code)))
