"""The one way the engine yields to the scheduler, at the running backend's own cost.

`anyio.lowlevel.checkpoint` looks the backend up on every call (about half a
microsecond), and a worker under limits or retries yields after every call.
The backend's own checkpoint, fetched once per run, does the same without the
lookup. The backends are told apart here because anyio offers no such handle.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Callable, Generator

Checkpoint = Callable[[], Awaitable[None]]


@types.coroutine
def _asyncio_checkpoint() -> Generator[None, None, None]:
    # A bare yield is how an asyncio task gives up one turn of the loop (what
    # ``asyncio.sleep(0)``, anyio's checkpoint there, does): a cancellation is
    # delivered here like at any other await.
    yield


def native_checkpoint(loop: object) -> Checkpoint:
    """Return the checkpoint of the event loop ``loop`` (as `loop_token` returns it)."""
    if isinstance(loop, asyncio.AbstractEventLoop):
        return _asyncio_checkpoint
    import trio  # the only other backend anyio runs on

    checkpoint: Checkpoint = trio.lowlevel.checkpoint
    return checkpoint
