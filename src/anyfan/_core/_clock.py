"""The one way the engine reads the running event loop's clock, fast and exact.

`anyio.current_time` looks the backend up on every call (about a microsecond),
which is most of a streamed item's or an uncontended admission's cost; the
loop's own clock function, fetched once per run, is the same clock without
that lookup. The backends are told apart here because anyio offers no such
handle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import anyio.lowlevel

Clock = Callable[[], float]


def native_clock(loop: object) -> Clock:
    """Return the clock function of the event loop ``loop`` (as `loop_token` returns it).

    asyncio's own loops and uvloop tell time by `time.monotonic`, so that is
    what is returned for them. Not ``loop.time``: uvloop's reads the time only
    once per loop iteration, to the millisecond, so times stamped with it (rate
    admissions, call durations) could be a few milliseconds early; reading
    `time.monotonic` directly is exact and agrees with the loop's timers. A
    loop with its own idea of time (a test clock that overrides ``time``) keeps it.
    """
    if isinstance(loop, asyncio.AbstractEventLoop):
        if type(loop).time is asyncio.BaseEventLoop.time or type(loop).__module__.startswith(
            "uvloop"
        ):
            return time.monotonic
        return loop.time
    import trio  # the only other backend anyio runs on

    # The run's clock object itself (a MockClock in tests): `trio.current_time`
    # first finds the run, which doubles the cost of a read.
    clock: Clock = trio.lowlevel.current_clock().current_time
    return clock


def duration_clock(loop: object) -> Clock:
    """Return a function whose differences are durations on the loop ``loop``'s clock.

    Its readings need not be the loop's times, only differ by the same amount:
    fit for timing a call, not for a deadline. trio's default clock reads
    ``offset + time.perf_counter()`` in a Python method, so for it the offset
    is dropped and `time.perf_counter` (a C function, about half the cost per
    read) is returned; any other clock (a MockClock, an asyncio loop's) is the
    loop's own, as `native_clock` returns it.
    """
    if not isinstance(loop, asyncio.AbstractEventLoop):
        import trio

        kind = type(trio.lowlevel.current_clock())
        # trio's default clock, told by name: trio does not export its class.
        if (kind.__module__, kind.__qualname__) == ("trio._core._run", "SystemClock"):
            return time.perf_counter
    return native_clock(loop)


def loop_token() -> object:
    """Return an object that identifies the running event loop (a new one per run)."""
    return anyio.lowlevel.current_token().native_token


def loop_clock() -> Clock:
    """Return a function reading the running loop's clock (the one test clocks drive)."""
    return native_clock(loop_token())
