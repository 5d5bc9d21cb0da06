"""A fast handle on the running event loop's clock.

`anyio.current_time` looks the backend up on every call (about a microsecond),
which is most of a streamed item's cost when it is read twice per item; the
loop's own clock function, fetched once per run, costs a fraction of that.
The backends are told apart here because anyio offers no such handle.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import anyio


def loop_clock() -> Callable[[], float]:
    """Return a function reading the running loop's clock (the one test clocks drive)."""
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:
        pass
    # Not asyncio, so trio (anyio's only other backend), which is imported by now.
    trio = sys.modules.get("trio")
    clock: Callable[[], float] = anyio.current_time if trio is None else trio.current_time
    return clock
