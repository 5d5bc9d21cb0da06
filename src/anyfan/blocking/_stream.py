"""The blocking ``stream``: outcomes handed from the loop to a plain iterator.

One job on the loop runs the whole async stream and drops each outcome into a
bounded, thread-safe hand-off buffer; the iterator takes them out. The two
sides wake each other only when one of them has to wait, so a fast stream
costs a lock per item rather than a thread round trip.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, Generic, TypeVar

import anyio

from .._core import Outcome
from ._loop import CANCEL_GRACE, Job, Loop, wait_for

T = TypeVar("T")
R = TypeVar("R")
X = TypeVar("X")

_END: Final[Any] = object()

OpenStream = Callable[[], AbstractAsyncContextManager[AsyncIterator[Outcome[T, R]]]]


class Handoff(Generic[X]):
    """A bounded buffer between a producer on the loop and one consumer thread."""

    __slots__ = (
        "_capacity",
        "_consumer",
        "_finished",
        "_items",
        "_lock",
        "_loop",
        "_low",
        "_space",
        "_started",
    )

    def __init__(self, loop: Loop, capacity: int) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._items: deque[X] = deque()
        self._capacity = capacity
        # The producer, once blocked on a full buffer, is woken when it is half empty.
        self._low = capacity // 2
        self._started = False
        self._finished = False
        self._consumer: threading.Lock | None = None
        self._space: anyio.Event | None = None

    def _wake_consumer(self) -> None:
        # Called with the lock held.
        waiter, self._consumer = self._consumer, None
        if waiter is not None:
            waiter.release()

    # -- producer side (on the loop) -----------------------------------------

    def mark_started(self) -> None:
        """Tell the consumer that the stream is open."""
        with self._lock:
            self._started = True
            self._wake_consumer()

    def finish(self) -> None:
        """Tell the consumer that nothing more will come (from any thread)."""
        with self._lock:
            self._finished = True
            self._wake_consumer()

    async def put(self, item: X) -> None:
        """Add ``item``, then wait while the buffer is full."""
        with self._lock:
            self._items.append(item)
            self._wake_consumer()
            space = None
            if len(self._items) >= self._capacity:
                space = self._space = anyio.Event()
        if space is not None:
            await space.wait()

    # -- consumer side -------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether the producer opened the stream."""
        return self._started

    def wait_started(self) -> None:
        """Wait until the stream is open or the producer has finished."""
        while True:
            with self._lock:
                if self._started or self._finished:
                    return
                waiter = self._consumer = threading.Lock()
                waiter.acquire()
            wait_for(waiter)

    def get(self) -> X:
        """Take the next item, waiting for one; return `_END` once finished and drained."""
        while True:
            with self._lock:
                if self._items:
                    item = self._items.popleft()
                    space = self._space
                    if space is not None and len(self._items) <= self._low:
                        self._space = None
                    else:
                        space = None
                    break
                if self._finished:
                    return _END  # type: ignore[no-any-return]
                waiter = self._consumer = threading.Lock()
                waiter.acquire()
            wait_for(waiter)
        if space is not None:
            self._loop.post(space.set)
        return item


async def _produce(open_stream: OpenStream[T, R], handoff: Handoff[Outcome[T, R]]) -> None:
    async with open_stream() as outcomes:
        handoff.mark_started()
        async for outcome in outcomes:
            await handoff.put(outcome)


class Outcomes(Generic[T, R]):
    """The plain iterator ``stream`` returns: one `anyfan.Outcome` per item.

    The work starts at once, on the facade's event loop. Leaving early, by
    ``break``, `close`, a ``with`` block or garbage collection, cancels what
    is still outstanding. An error that ends the whole stream (the input
    raising, an expired ``deadline``) is raised after the outcomes that
    came before it.
    """

    def __init__(self, loop: Loop, open_stream: OpenStream[T, R], *, capacity: int) -> None:
        loop.check_caller()
        self._loop = loop
        self._closed = True  # until there is a job to cancel
        self._handoff: Handoff[Outcome[T, R]] = Handoff(loop, max(1, capacity))
        # The job holds the hand-off, not this iterator, so that dropping the
        # iterator lets it be collected and its work cancelled.
        self._job: Job[None] = loop.submit(
            _produce, (open_stream, self._handoff), on_done=self._handoff.finish
        )
        self._closed = False
        try:
            self._handoff.wait_started()
        except BaseException:
            self._abort()
            raise
        if not self._handoff.started:
            self._job.result()  # the stream could not even open: raise why

    def __iter__(self) -> Outcomes[T, R]:
        return self

    def __next__(self) -> Outcome[T, R]:
        if self._closed:
            raise StopIteration
        try:
            outcome = self._handoff.get()
        except BaseException:
            self._abort()
            raise
        if outcome is _END:
            self._closed = True
            self._job.wait_done()
            self._job.result()
            raise StopIteration
        return outcome

    def __enter__(self) -> Outcomes[T, R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Cancel the outstanding work and wait until it has stopped."""
        if self._closed:
            return
        self._closed = True
        self._job.cancel()
        if not self._loop.in_loop_thread():
            self._job.wait_done()

    def _abort(self) -> None:
        # After an interruption: cancel, give the work a moment, let the caller re-raise.
        self._closed = True
        self._job.cancel()
        self._job.wait_done(timeout=CANCEL_GRACE)

    def __del__(self) -> None:
        # Garbage collection may run on any thread, the loop's own included:
        # only ask for cancellation, never wait for it.
        if not getattr(self, "_closed", True):
            self._closed = True
            self._job.cancel()
