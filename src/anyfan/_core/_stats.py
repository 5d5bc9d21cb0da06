"""Counters behind ``Fan.stats``, and the frozen snapshot they produce.

Pure: the engine bumps the counters of `Stats` as attempts start and end, and
`Stats.snapshot` freezes them with what the limiter and pause report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._window import SlidingSum

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


class AdmissionMeter(SlidingSum):
    """Units admitted per rate limit over a sliding window: a `SlidingSum` column per limit.

    Recording an admission finds its time slot once for all the limits: it
    runs on every admitted call.
    """

    __slots__ = ()

    def __init__(self, count: int, window: float = RATE_WINDOW, buckets: int = 20) -> None:
        super().__init__(window, buckets, columns=count)

    #: Count one admission that charged ``costs`` (one per limit) at ``now``.
    record = SlidingSum.add_row

    def rates(self, now: float) -> tuple[float, ...]:
        """Units admitted per second, per limit, over the window ending at ``now``."""
        return tuple(total / self.window for total in self.totals(now))


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
