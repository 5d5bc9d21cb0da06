"""A sum over a sliding window of recent time, in a fixed number of buckets."""

from __future__ import annotations


class SlidingSum:
    """Amounts added over the last ``window`` seconds, kept in ``buckets`` slots.

    Pure: every method takes ``now``. The window is counted in whole buckets,
    so an amount leaves the sum between ``window - window / buckets`` and
    ``window`` seconds after it was added. If the clock jumps (backwards, or
    forwards past the window) the history is dropped rather than misread.

    Args:
        window: Seconds the sum looks back (positive).
        buckets: Slots the window is cut into (at least 1).
    """

    __slots__ = ("_amounts", "_buckets", "_current", "_slot", "_stamps", "_width", "window")

    def __init__(self, window: float, buckets: int = 10) -> None:
        self.window = window
        self._buckets = buckets
        self._width = window / buckets
        self._amounts = [0.0] * buckets
        # The absolute bucket number each slot holds, or None when unused.
        self._stamps: list[int | None] = [None] * buckets
        # The bucket number and slot the last `add` wrote to: most adds land there too.
        self._current: int | None = None
        self._slot = 0

    def _index(self, now: float) -> int:
        return int(now // self._width)

    def add(self, amount: float, now: float) -> None:
        """Add ``amount`` at time ``now``."""
        index = int(now // self._width)
        if index == self._current:
            self._amounts[self._slot] += amount
            return
        slot = index % self._buckets
        if self._stamps[slot] != index:
            self._stamps[slot] = index
            self._amounts[slot] = 0.0
        self._amounts[slot] += amount
        self._current, self._slot = index, slot

    def total(self, now: float) -> float:
        """Return the sum of the amounts added within the window ending at ``now``."""
        current = self._index(now)
        oldest = current - self._buckets
        return sum(
            amount
            for stamp, amount in zip(self._stamps, self._amounts, strict=True)
            if stamp is not None and oldest < stamp <= current
        )


class HighQuantile:
    """A high quantile of the last ``size`` values, quick to raise and slow to lower.

    Pure and O(1) per value: the quantile is recomputed (a sort of ``size``
    values) once every ``size // 4`` values, but a value above the current
    answer raises it at once, so the answer is never below the newest value.

    Args:
        size: How many recent values it looks at (at least 4).
        quantile: The quantile to report, in (0, 1]; 1 is the largest.
        initial: The answer before the first recomputation: a cautious
            guess holds until ``size // 4`` values are known.
    """

    __slots__ = ("_count", "_every", "_quantile", "_values", "value")

    def __init__(self, size: int = 128, quantile: float = 0.99, initial: float = 0.0) -> None:
        self._values = [0.0] * size
        self._quantile = quantile
        self._every = max(1, size // 4)
        self._count = 0
        #: The current answer: ``initial`` until the first recomputation.
        self.value = initial

    def add(self, x: float) -> float:
        """Take in ``x``; return the quantile of the recent values (at least ``x``)."""
        values = self._values
        count = self._count
        values[count % len(values)] = x
        self._count = count = count + 1
        if x > self.value:
            self.value = x
        elif count % self._every == 0:
            recent = sorted(values[: min(count, len(values))])
            high = recent[min(len(recent) - 1, int(self._quantile * len(recent)))]
            self.value = high if high > x else x
        return self.value
