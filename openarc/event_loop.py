"""Run the daemon's event loop: uvloop where it is installed (Linux, macOS), asyncio's own loop elsewhere.

uvloop runs the same asyncio code on libuv instead of the pure-Python selector loop: 10-15% less HTTP-process
CPU per streamed token (benchmarks/http_overhead.py). The HTTP process wakes once per stream per worker step,
and on a small machine every CPU-second it spends is taken from the inference threads.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")
EventLoopChoice = Literal["auto", "uvloop", "asyncio"]


class EventLoopUnavailable(Exception):
    pass


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def resolve(choice: EventLoopChoice) -> Literal["uvloop", "asyncio"]:
    if choice == "uvloop" and not uvloop_available():
        raise EventLoopUnavailable("server.event_loop is uvloop, but uvloop is not installed (pip install uvloop)")
    if choice == "auto":
        return "uvloop" if uvloop_available() else "asyncio"
    return choice


def run(main: Coroutine[Any, Any, T], loop: Literal["uvloop", "asyncio"]) -> T:
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
