from __future__ import annotations

import asyncio

import pytest

from openarc import event_loop


def test_auto_takes_uvloop_when_installed() -> None:
    assert event_loop.uvloop_available()  # a dependency on this platform
    assert event_loop.resolve("auto") == "uvloop"
    assert event_loop.resolve("asyncio") == "asyncio"


def test_asking_for_a_missing_uvloop_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_loop, "uvloop_available", lambda: False)
    assert event_loop.resolve("auto") == "asyncio"
    with pytest.raises(event_loop.EventLoopUnavailable, match="uvloop is not installed"):
        event_loop.resolve("uvloop")


@pytest.mark.parametrize("choice", ["uvloop", "asyncio"])
def test_run_uses_the_chosen_loop(choice: event_loop.EventLoopChoice) -> None:
    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    module = event_loop.run(loop_module(), event_loop.resolve(choice))
    assert module.startswith("uvloop") == (choice == "uvloop")
