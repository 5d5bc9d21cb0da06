"""Putting results that finish out of order back into input order (sans-I/O)."""

from __future__ import annotations

from typing import Generic, TypeVar

X = TypeVar("X")


class Reorderer(Generic[X]):
    """Hold back entries until every lower index has been released.

    ``push`` takes entries in any order and returns those that are now ready,
    in index order. Memory is the reorder window: entries finished ahead of
    the lowest unfinished index.
    """

    __slots__ = ("_held", "_next")

    def __init__(self, start: int = 0) -> None:
        self._next = start
        self._held: dict[int, X] = {}

    @property
    def next_index(self) -> int:
        """The index the next released entry will have."""
        return self._next

    @property
    def pending(self) -> int:
        """How many entries are held back waiting for a lower index."""
        return len(self._held)

    def push(self, index: int, entry: X) -> list[X]:
        """Add the entry for ``index``; return the entries now ready, in order."""
        if index < self._next or index in self._held:
            raise ValueError(f"index {index} was already pushed")
        if index != self._next:
            self._held[index] = entry
            return []
        ready = [entry]
        self._next += 1
        held = self._held
        while self._next in held:
            ready.append(held.pop(self._next))
            self._next += 1
        return ready
