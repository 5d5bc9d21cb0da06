"""A sum over a sliding window of recent time, in a fixed number of buckets."""

from __future__ import annotations

from collections.abc import Sequence
from operator import add


class SlidingSum:
    """Amounts added over the last ``window`` seconds, kept in ``buckets`` slots.

    Pure: every method takes ``now``. The window is counted in whole buckets,
    so an amount leaves the sum between ``window - window / buckets`` and
    ``window`` seconds after it was added. If the clock jumps (backwards, or
    forwards past the window) the history is dropped rather than misread.
    With ``columns`` above 1 it keeps that many sums side by side, each added
    to at once by `add_row` (an admission's cost under each of its limits).

    Args:
        window: Seconds the sum looks back (positive).
        buckets: Slots the window is cut into (at least 1).
        columns: Sums kept side by side (0 or more).
    """

    __slots__ = ("_current", "_row", "_rows", "_stamps", "_width", "window")

    def __init__(self, window: float, buckets: int = 10, columns: int = 1) -> None:
        self.window = window
        self._width = window / buckets
        self._rows = [[0.0] * columns for _ in range(buckets)]
        # The absolute bucket number each slot holds, or None when unused.
        self._stamps: list[int | None] = [None] * buckets
        # The bucket number and row the last addition went to: most additions land there too.
        self._current: int | None = None
        self._row = self._rows[0]

    def add(self, amount: float, now: float) -> None:
        """Add ``amount`` at time ``now`` (to the first column)."""
        index = int(now // self._width)
        if index != self._current:
            self._turn(index)
        self._row[0] += amount

    def add_row(self, amounts: Sequence[float], now: float) -> None:
        """Add ``amounts`` (one per column) at time ``now``."""
        index = int(now // self._width)
        if index != self._current:
            self._turn(index)
        row = self._row
        row[:] = map(add, row, amounts)  # in C: no Python loop over the columns

    def _turn(self, index: int) -> None:
        slot = index % len(self._rows)
        row = self._rows[slot]
        if self._stamps[slot] != index:
            self._stamps[slot] = index
            row[:] = [0.0] * len(row)
        self._current, self._row = index, row

    def total(self, now: float) -> float:
        """Return the sum of the amounts added within the window ending at ``now``."""
        return self.totals(now)[0]

    def totals(self, now: float) -> tuple[float, ...]:
        """Return each column's sum of the amounts added within the window ending at ``now``."""
        current = int(now // self._width)
        oldest = current - len(self._rows)
        rows = [
            row
            for stamp, row in zip(self._stamps, self._rows, strict=True)
            if stamp is not None and oldest < stamp <= current
        ]
        return tuple(sum(row[column] for row in rows) for column in range(len(self._rows[0])))


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
