"""Fixtures for the blocking facade: a background loop per backend, and a scripted Ctrl-C."""

from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from anyfan.blocking import Loop
from anyfan.blocking._loop import wait_for

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from types import FrameType


@pytest.fixture
def facade_loop(anyio_backend: Any) -> Iterator[Loop]:
    """A `Loop` on each backend (asyncio, asyncio+uvloop, trio), closed after the test."""
    name, options = anyio_backend
    loop = Loop(name, options)
    yield loop
    loop.close()


def _waiting_in(frame: FrameType, caller: str | None) -> bool:
    if frame.f_code is not wait_for.__code__:
        return False
    while caller is not None and frame.f_back is not None:
        frame = frame.f_back
        if frame.f_code.co_name == caller:
            return True
    return caller is None


@pytest.fixture
def ctrl_c() -> Iterator[Callable[..., Awaitable[None]]]:
    """An async function that presses Ctrl-C in the main thread once it waits on the facade.

    Called from the facade's loop, ``await ctrl_c(caller=None)`` first waits
    until the main thread sits in the facade's wait (called from a function
    named ``caller``, if given), so the interrupt cannot land before the call
    is set up; then it sends SIGINT to the main thread alone. The default
    SIGINT handler is installed for the duration of the test.
    """
    assert threading.current_thread() is threading.main_thread()
    main = threading.main_thread().ident
    assert main is not None
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    async def press(caller: str | None = None) -> None:
        with anyio.fail_after(10):
            while not _waiting_in(sys._current_frames()[main], caller):
                await anyio.sleep(0.001)
        signal.pthread_kill(main, signal.SIGINT)

    yield press
    signal.signal(signal.SIGINT, previous)
