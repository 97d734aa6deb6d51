"""Turn a serving result into a response: a Struct becomes JSON, a byte iterator becomes an SSE stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from openarc.api.disconnect import ClientGone, until_disconnect

_encoder = msgspec.json.Encoder()
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# nginx's code for "client closed request": nobody reads it, but the access log should tell.
CLIENT_CLOSED = 499


def json_response(payload: msgspec.Struct | dict[str, object], status: int = 200) -> Response:
    return Response(_encoder.encode(payload), status, media_type="application/json")


async def respond(request: Request, work: Awaitable[msgspec.Struct | AsyncIterator[bytes]]) -> Response:
    try:
        result = await until_disconnect(request, work)
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    if isinstance(result, msgspec.Struct):
        return json_response(result)
    # Starlette cancels the iterator when the client disconnects; its `finally` aborts the engine requests.
    return StreamingResponse(result, media_type="text/event-stream", headers=SSE_HEADERS)
