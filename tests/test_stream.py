from __future__ import annotations

import asyncio

from openarc.engine.stream import RequestStream
from openarc.ipc import RequestOutput


def test_outputs_merge_until_taken() -> None:
    notify = asyncio.Event()
    stream = RequestStream(1, "r", notify)
    assert stream.take() is None and not stream.started
    stream.push(RequestOutput(1, text="Hel", tokens=1, prompt_tokens=7))
    stream.push(RequestOutput(1, text="lo", tokens=1))
    assert notify.is_set() and stream.started and stream.prompt_tokens == 7
    delta = stream.take()
    assert delta is not None and (delta.text, delta.tokens, delta.finish_reason) == ("Hello", 2, None)
    assert stream.take() is None
    stream.push(RequestOutput(1, text="!", tokens=1, finish_reason="stop"))
    delta = stream.take()
    assert delta is not None and (delta.text, delta.finish_reason) == ("!", "stop")
    assert stream.finished and stream.drained and stream.completion_tokens == 3
    assert stream.take() is None


def test_failure_ends_the_stream_with_an_engine_error() -> None:
    stream = RequestStream(1, "r", asyncio.Event())
    stream.push(RequestOutput(1, text="partial", tokens=1, prompt_tokens=3))
    stream.fail("worker died")
    delta = stream.take()
    assert delta is not None
    assert (delta.text, delta.error, delta.error_kind) == ("partial", "worker died", "engine")
    assert stream.finished
