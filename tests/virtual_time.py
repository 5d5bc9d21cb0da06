"""Virtual time for limiter tests on every backend, so nothing waits in real time.

On trio the test runs on an autojumping ``MockClock`` (see
``strategies.clocked_backend``) and the code under test uses its default
clock, `anyio.current_time`. On asyncio a `FakeClock` is injected instead:
whenever every other task is blocked it jumps to the earliest pending sleep,
just as MockClock does, so waits cost no real time and times are exact.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class FakeClock:
    """A clock whose time moves only when every task waits (asyncio only)."""

    def __init__(self, start: float = 100.0) -> None:
        self._now = start
        self._sleepers: list[list[Any]] = []
        self._seq = itertools.count()
        self._registered: anyio.Event | None = None

    def now(self) -> float:
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        entry = [deadline, next(self._seq), anyio.Event()]
        heapq.heappush(self._sleepers, entry)
        if self._registered is not None:
            self._registered.set()
        try:
            await entry[2].wait()
        finally:
            entry[2] = None  # cancelled or woken: the driver skips it

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + seconds)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FakeClock]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._drive)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()

    async def _drive(self) -> None:
        while True:
            await _all_others_blocked()
            sleepers = self._sleepers
            while sleepers and sleepers[0][2] is None:
                heapq.heappop(sleepers)
            if not sleepers:
                # Only a new sleeper can change anything now; wait for one.
                self._registered = anyio.Event()
                await self._registered.wait()
                self._registered = None
                continue
            self._now = max(self._now, sleepers[0][0])
            while sleepers and sleepers[0][0] <= self._now:
                event = heapq.heappop(sleepers)[2]
                if event is not None:
                    event.set()


async def _all_others_blocked() -> None:
    """Return once every other asyncio task is waiting on something not yet done."""
    this = asyncio.current_task()
    while True:
        await asyncio.sleep(0)
        for task in asyncio.all_tasks():
            if task is this:
                continue
            waiter = task._fut_waiter  # type: ignore[attr-defined]
            if waiter is None or waiter.done():
                break
        else:
            return


class Virtual:
    """The clock a test uses: ``now()``, ``sleep_until(t)``, and ``kwargs`` to inject it."""

    def __init__(self, fake: FakeClock | None) -> None:
        self.fake = fake

    @property
    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments that make a Limits/Pause/Line use this clock."""
        if self.fake is None:
            return {}
        return {"clock": self.fake.now, "sleep_until": self.fake.sleep_until}

    def now(self) -> float:
        return anyio.current_time() if self.fake is None else self.fake.now()

    async def sleep_until(self, deadline: float) -> None:
        if self.fake is None:
            await anyio.sleep_until(deadline)
        else:
            await self.fake.sleep_until(deadline)

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.now() + seconds)


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@asynccontextmanager
async def virtual_time() -> AsyncIterator[Virtual]:
    """Run the block on virtual time: a FakeClock on asyncio, the MockClock on trio."""
    if not _on_asyncio():
        yield Virtual(None)
        return
    fake = FakeClock()
    async with fake.running():
        yield Virtual(fake)
