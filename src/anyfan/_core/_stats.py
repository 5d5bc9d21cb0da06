"""Counters behind ``Fan.stats``, and the frozen snapshot they produce.

Pure: the engine bumps the counters of `Stats` as attempts start and end, and
`Stats.snapshot` freezes them with what the limiter and pause report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Seconds over which admitted rates are measured.
RATE_WINDOW = 10.0


@dataclass(frozen=True, slots=True)
class LimitStats:
    """How close one rate limit is running to its limit.

    Attributes:
        name: The limit as written, such as ``"500/60s"``.
        limit: The limit, in units per second.
        admitted: Units admitted per second over the last ``RATE_WINDOW`` seconds.
    """

    name: str
    limit: float
    admitted: float

    @property
    def utilisation(self) -> float:
        """``admitted / limit``: 1.0 means running exactly at the limit."""
        return self.admitted / self.limit


@dataclass(frozen=True, slots=True)
class FanStats:
    """A snapshot of a Fan's activity since it was made.

    Every attempt that started is in exactly one of the counts: it is running
    (``in_flight``), succeeded, failed for good, failed and was ``retried``,
    or was cancelled. So ``started == in_flight + succeeded + failed +
    retried + cancelled``.

    Attributes:
        started: Attempts started (first attempts and retries).
        succeeded: Attempts that returned a value.
        failed: Attempts whose error was final.
        retried: Attempts that failed and were retried.
        cancelled: Attempts cancelled before they ended.
        in_flight: Attempts running now.
        paused: Seconds new starts were held by shared pauses.
        limits: One entry per rate limit, in the order given.
    """

    started: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    in_flight: int = 0
    paused: float = 0.0
    limits: tuple[LimitStats, ...] = ()


class AdmissionMeter:
    """Units admitted per rate limit over a sliding window of ``buckets`` time slots.

    Each slot holds one sum per limit, so recording an admission finds its
    slot once for all the limits: it runs on every admitted call. An amount
    leaves the window between ``window - window / buckets`` and ``window``
    seconds after it was recorded; a clock that jumps drops the history
    rather than misread it.
    """

    __slots__ = ("_current", "_row", "_rows", "_stamps", "_width", "window")

    def __init__(self, count: int, window: float = RATE_WINDOW, buckets: int = 20) -> None:
        self.window = window
        self._width = window / buckets
        self._rows = [[0.0] * count for _ in range(buckets)]
        # The absolute slot number each row holds, or None when unused.
        self._stamps: list[int | None] = [None] * buckets
        # The slot number and row the last admission went to: most go there too.
        self._current: int | None = None
        self._row = self._rows[0]

    def record(self, costs: Sequence[float], now: float) -> None:
        """Count one admission that charged ``costs`` (one per limit) at ``now``."""
        index = int(now // self._width)
        if index != self._current:
            self._turn(index)
        row = self._row
        for i, cost in enumerate(costs):
            row[i] += cost

    def _turn(self, index: int) -> None:
        slot = index % len(self._rows)
        row = self._rows[slot]
        if self._stamps[slot] != index:
            self._stamps[slot] = index
            row[:] = [0.0] * len(row)
        self._current, self._row = index, row

    def rates(self, now: float) -> tuple[float, ...]:
        """Units admitted per second, per limit, over the window ending at ``now``."""
        current = int(now // self._width)
        oldest = current - len(self._rows)
        rows = [
            row
            for stamp, row in zip(self._stamps, self._rows, strict=True)
            if stamp is not None and oldest < stamp <= current
        ]
        count = len(self._rows[0])
        return tuple(sum(row[i] for row in rows) / self.window for i in range(count))


class Stats:
    """The running counts; `snapshot` freezes them into a `FanStats`.

    The engine bumps the counters as attempts start and end; ``in_flight`` is
    derived from them, so it can never disagree with them.
    """

    __slots__ = ("cancelled", "failed", "retried", "started", "succeeded")

    def __init__(self) -> None:
        self.started = 0
        self.succeeded = 0
        self.failed = 0
        self.retried = 0
        self.cancelled = 0

    @property
    def in_flight(self) -> int:
        """Attempts started that have not ended yet."""
        return self.started - self.succeeded - self.failed - self.retried - self.cancelled

    def snapshot(self, *, paused: float = 0.0, limits: Sequence[LimitStats] = ()) -> FanStats:
        """Freeze the counts, with the pause time and per-limit rates given."""
        return FanStats(
            started=self.started,
            succeeded=self.succeeded,
            failed=self.failed,
            retried=self.retried,
            cancelled=self.cancelled,
            in_flight=self.in_flight,
            paused=paused,
            limits=tuple(limits),
        )
