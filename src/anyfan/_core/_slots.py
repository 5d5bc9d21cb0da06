"""A first-come-first-served counter of free call slots, shared by a Fan's runs."""

from __future__ import annotations

from collections import deque

import anyio


class _Waiter:
    __slots__ = ("event", "granted")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.granted = False


class Slots:
    """Like a semaphore, but free of event-loop state until someone must wait.

    Uncontended ``acquire`` is a counter decrement with no checkpoint, which
    keeps the per-item cost near one plain await. Waiters are served strictly
    in arrival order, and a freed slot is handed straight to the next waiter
    so a newcomer can never overtake it. Because nothing is bound to a loop
    while idle, one `Fan` can be used from successive event loops.
    """

    __slots__ = ("_free", "_total", "_waiters")

    def __init__(self, total: int) -> None:
        self._total = total
        self._free = total
        self._waiters: deque[_Waiter] = deque()

    @property
    def total(self) -> int:
        """How many slots there are."""
        return self._total

    @property
    def in_use(self) -> int:
        """How many slots are held right now."""
        return self._total - self._free

    @property
    def waiting(self) -> int:
        """How many tasks are queued for a slot."""
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a free slot if one is free and nobody is waiting; never suspends."""
        if self._free and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a slot, waiting in line if none is free."""
        if self._free and not self._waiters:
            self._free -= 1
            return
        waiter = _Waiter()
        self._waiters.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.granted:
                # Handed a slot just as we were cancelled: pass it on.
                self.release()
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back, handing it to the longest waiter if there is one."""
        if self._waiters:
            waiter = self._waiters.popleft()
            waiter.granted = True
            waiter.event.set()
        else:
            self._free += 1
