"""A bounded hand-off from many workers to one consumer, cheap when nobody waits."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from typing import Final, Generic, TypeVar

import anyio
import anyio.lowlevel

X = TypeVar("X")


class Channel(Generic[X]):
    """A FIFO hand-off between workers and one reader, bounded by ``capacity``.

    An anyio memory stream switches tasks on every send and receive; this
    buffer only suspends a side that must wait. Writers append to a list of
    at most ``capacity`` entries. The reader does not take entries from it one
    by one: when its own batch runs out it takes the whole list at once,
    leaving an empty one in its place, and reads on through the list with an
    iterator. An entry then costs the reader one step of a ``for`` loop over
    a list, and a writer a `list.append`, which the interpreter does inline:
    neither looks up and calls a method, as a deque's `popleft` and `append`
    do. Writers find room again in a burst. At most ``2 * capacity`` entries
    are held: a full buffer plus the batch being read.

    Writers that find the buffer full all wait on one event, set when the
    reader next takes the buffer. The reader yields to the scheduler once per
    batch: after taking one that was waiting, so a reader that never finds
    the buffer empty still yields at least once per ``capacity`` entries; or,
    finding it empty, before it waits on an event, which the writers then
    ready to run often make unnecessary.

    A writer on a hot path may do what `try_put` does inline, saving a call
    per entry: append to `entries` (read afresh each time: the reader swaps
    it out) while it holds fewer than `capacity`, then `wake_reader` if
    `reader_waiting` is set.
    """

    __slots__ = ("_batch", "_closed", "_has_room", "capacity", "entries", "reader_waiting")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        #: The writers' buffer; the reader replaces it with an empty one when it takes it.
        self.entries: list[X] = []
        #: Where the reader is in the batch it took last. Shared by every
        #: reader, so one that ends mid-batch leaves the rest to the next.
        self._batch: Iterator[X] = iter(())
        self._closed = False
        #: Set while the reader waits for an entry.
        self.reader_waiting: anyio.Event | None = None
        self._has_room: anyio.Event | None = None

    async def put(self, entry: X) -> None:
        """Append ``entry``, waiting while the buffer is full."""
        while len(self.entries) >= self.capacity:
            if self._has_room is None:
                self._has_room = anyio.Event()
            await self._has_room.wait()
        self.entries.append(entry)
        if self.reader_waiting is not None:
            self.wake_reader()

    def try_put(self, entry: X) -> bool:
        """Append ``entry`` if there is room, without suspending; return whether it was."""
        # `self.entries` is read afresh on every call: the reader swaps it out.
        entries = self.entries
        if len(entries) >= self.capacity:
            return False
        entries.append(entry)
        if self.reader_waiting is not None:
            self.wake_reader()
        return True

    def wake_reader(self) -> None:
        """Wake the reader waiting for an entry (`reader_waiting` must be set)."""
        assert self.reader_waiting is not None
        self.reader_waiting.set()
        self.reader_waiting = None

    def close(self) -> None:
        """Say no more entries will come; the reader ends once it has taken the rest."""
        self._closed = True
        if self.reader_waiting is not None:
            self.wake_reader()

    def __aiter__(self) -> Channel[X]:
        return self

    async def reader(self) -> AsyncGenerator[X, None]:
        """Yield the entries in order, as `__anext__` takes them, until closed and drained.

        What ``async for`` should iterate: an async generator's frame lives
        across entries, where each `__anext__` call makes a coroutine, so an
        entry costs about a third less to hand out. Both read the same state,
        so they can be mixed, and a reader ended by an exception (a
        cancellation while it waited) loses nothing: a new one carries on.
        Whoever makes a reader should `aclose` it if it may be left unfinished
        (``break``), rather than leave that to the event loop's finaliser.
        """
        while True:
            # The batch's iterator is read afresh each time round: `__anext__`
            # may have taken a new batch while this reader was suspended.
            for entry in self._batch:
                yield entry
            try:
                await self._refill()
            except StopAsyncIteration:
                return

    async def __anext__(self) -> X:
        """Take the oldest entry, waiting while empty; stop once closed and drained."""
        # The reader's only coroutine per entry, and its only work while its
        # batch lasts: `async for` over the channel costs about what it costs
        # over a bare async iterator.
        entry = next(self._batch, _NONE)
        while entry is _NONE:
            await self._refill()
            entry = next(self._batch, _NONE)
        return entry  # type: ignore[return-value]

    async def _refill(self) -> None:
        """Take the whole buffer as the next batch, waiting for entries if it is empty.

        Raises StopAsyncIteration once the channel is closed and drained.
        """
        if self.entries:
            self._take()
            # Not having waited, yield once, after the swap: writers can
            # already use the room meanwhile, and if this checkpoint raises,
            # the batch stays for the next read.
            await anyio.lowlevel.checkpoint()
            return
        if self._closed:
            raise StopAsyncIteration
        # Yield once before waiting: the writers already due to run refill the
        # buffer meanwhile, so a busy stream takes its batches without an event
        # per batch (made, set, and its wake-up scheduled). A checkpoint is all
        # a reader that finds entries waiting would take anyway.
        await anyio.lowlevel.checkpoint()
        while not self.entries:
            if self._closed:
                raise StopAsyncIteration
            # One reader, so no event can be pending here: each wait gets a fresh one.
            self.reader_waiting = anyio.Event()
            await self.reader_waiting.wait()
        self._take()

    def _take(self) -> None:
        # The batch has run out: the buffer becomes the next, and writers get a fresh one.
        self._batch = iter(self.entries)
        self.entries = []
        if self._has_room is not None:
            self._has_room.set()
            self._has_room = None


#: What `next` returns from a batch that has run out (entries may be anything else).
_NONE: Final = object()
