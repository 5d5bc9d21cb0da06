"""A first-come-first-served line whose head waits until a pure schedule lets it through.

Rate limits and shared pauses both need the same thing: callers queue in
arrival order, and only the one at the head watches the clock. The head asks
its ``attempt`` function whether it may go; the answer is either "yes, and
the reservation is made" or "not before time t". It sleeps until then, or
until someone pokes it because the schedule changed (a limit was raised, a
reservation was given back). When it goes, it admits everyone behind it who
may go at the same instant and wakes the next one to take over the watch.

Like `Slots`, a line holds no event-loop state while nobody waits, so one
line can serve successive event loops, and a caller that finds it empty and
is admitted at once never suspends.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, TypeAlias

import anyio

from ._clock import Clock, native_clock

#: Tries to let a caller through at ``now``: ``None`` if it may go (and its
#: reservation is made), else the time from which it is worth trying again.
Attempt: TypeAlias = Callable[[float], "float | None"]
SleepUntil: TypeAlias = Callable[[float], Awaitable[None]]

_WAITING: Final = 0  # behind the head
_LEADING: Final = 1  # at the head, watching the clock
_ADMITTED: Final = 2  # let through; its reservation is made
_GONE: Final = 3  # cancelled while waiting; skipped when its turn comes


class _Waiter:
    __slots__ = ("attempt", "event", "retry_at", "scope", "stale", "status", "undo")

    def __init__(
        self, attempt: Attempt, undo: Callable[[], None], status: int, retry_at: float
    ) -> None:
        self.attempt = attempt
        self.undo = undo
        self.status = status
        self.retry_at = retry_at
        self.event: anyio.Event | None = None
        self.scope: anyio.CancelScope | None = None
        self.stale = False


class Line:
    """Callers wait their turn; the head sleeps until its ``attempt`` succeeds.

    Args:
        clock: Returns the current time; defaults to `anyio.current_time`.
        sleep_until: Sleeps until a time on that clock; defaults to `anyio.sleep_until`.
    """

    __slots__ = ("_gone", "_injected", "_queue", "_sleep_until", "clock")

    def __init__(self, clock: Clock | None = None, sleep_until: SleepUntil | None = None) -> None:
        self._injected = clock is not None
        #: Returns the current time (see `bind`); `now` calls it.
        self.clock: Clock = clock or anyio.current_time
        self._sleep_until: SleepUntil = sleep_until or anyio.sleep_until
        self._queue: deque[_Waiter] = deque()
        self._gone = 0

    def bind(self, loop: object) -> None:
        """Read the time straight from the running event loop ``loop`` (see `loop_token`).

        `anyio.current_time` first looks up which library is running, which
        costs as much as the rest of an uncontended admission; the loop's own
        clock is the same clock without that lookup.
        """
        if not self._injected:
            self.clock = native_clock(loop)

    def now(self) -> float:
        """Return the current time on this line's clock."""
        return self.clock()

    @property
    def busy(self) -> bool:
        """Whether anyone is in line (a newcomer must then queue)."""
        return bool(self._queue)

    @property
    def waiting(self) -> int:
        """How many callers are in line."""
        return len(self._queue) - self._gone

    def try_now(self, attempt: Attempt) -> bool:
        """Let a caller through at once if nobody is in line and ``attempt`` lets it.

        The uncontended case of `join`, without a coroutine: when it returns
        ``False`` nothing was reserved, and the caller must `join`.
        """
        return not self._queue and attempt(self.clock()) is None

    async def join(self, attempt: Attempt, undo: Callable[[], None]) -> None:
        """Wait in line until ``attempt`` lets this caller through.

        ``undo`` gives back what a successful ``attempt`` reserved; it runs if
        the caller is cancelled after being let through but before resuming.
        Cancelled callers never hold up those behind them.
        """
        queue = self._queue
        if queue:
            waiter = _Waiter(attempt, undo, _WAITING, 0.0)
            waiter.event = anyio.Event()
            queue.append(waiter)
            try:
                await waiter.event.wait()
            except BaseException:
                self._abandon(waiter)
                raise
            if waiter.status == _ADMITTED:
                return
        else:
            retry_at = attempt(self.clock())
            if retry_at is None:
                return
            waiter = _Waiter(attempt, undo, _LEADING, retry_at)
            queue.append(waiter)
        try:
            await self._lead(waiter)
        except BaseException:
            self._abandon(waiter)
            raise

    async def _lead(self, waiter: _Waiter) -> None:
        retry_at = waiter.retry_at
        while True:
            if not waiter.stale:
                with anyio.CancelScope() as scope:
                    waiter.scope = scope
                    await self._sleep_until(retry_at)
                waiter.scope = None
            waiter.stale = False
            now = self.clock()
            next_try = waiter.attempt(now)
            if next_try is None:
                break
            retry_at = next_try
        waiter.status = _ADMITTED
        self._queue.popleft()
        self._advance(now)

    def _advance(self, now: float) -> None:
        """Let through everyone at the front who may go at ``now``; hand the watch on."""
        queue = self._queue
        while queue:
            waiter = queue[0]
            if waiter.status == _GONE:
                queue.popleft()
                self._gone -= 1
                continue
            next_try = waiter.attempt(now)
            assert waiter.event is not None
            if next_try is None:
                queue.popleft()
                waiter.status = _ADMITTED
                waiter.event.set()
                continue
            waiter.status = _LEADING
            waiter.retry_at = next_try
            waiter.event.set()
            return

    def _abandon(self, waiter: _Waiter) -> None:
        if waiter.status == _ADMITTED:
            # Let through, then cancelled before it could go: give the room back.
            waiter.undo()
            self.poke()
        elif waiter.status == _LEADING:
            self._queue.popleft()
            waiter.status = _GONE
            self._advance(self.clock())
        else:
            waiter.status = _GONE
            self._gone += 1

    def poke(self) -> None:
        """Make the head look at the schedule again (it changed)."""
        if self._queue:
            head = self._queue[0]
            if head.scope is not None:
                head.scope.cancel()
            else:
                head.stale = True


class Timebase:
    """Notices when another event loop takes over, and how far its clock is from the last.

    Each trio run has its own clock with a random offset, so times stored in
    one run mean nothing in the next. `rebase` returns how much to move the
    stored times so they keep their distance from "now"; real time between
    runs is measured with `time.monotonic`.
    """

    __slots__ = ("_offset", "_token")

    def __init__(self) -> None:
        self._token: object = None
        self._offset = 0.0

    def rebase(self, token: object, now: float) -> float:
        """Record that ``now`` is the time on the loop ``token``; return the shift to apply."""
        offset = now - time.monotonic()
        shift = 0.0 if self._token is None or token is self._token else offset - self._offset
        self._token = token
        self._offset = offset
        return shift
