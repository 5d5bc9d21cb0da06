"""The interface a shared store offers a `Rate` whose state lives outside the process.

A store keeps each quota's state (the GCRA's bucket and its one-second slice)
on a server whose clock is the only clock, so any number of processes on any
number of hosts admit against one quota. The engine never imports an
implementation: `anyfan.redis.RedisStore` is one. Nothing here does I/O.

Admission is a *reservation*: one round trip charges every stored rate of a
call at the earliest start they all allow, and returns how long to wait until
then. The caller sleeps locally; the store sees nothing more until the call
ends and is settled (or, if it was cancelled before it started, refunded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class QuotaSpec:
    """One stored rate's part of a reservation: where its state lives and its arithmetic.

    Attributes:
        key: The quota's name in the store (the Rate's ``key``).
        limit: Units per ``per`` seconds; every process sharing ``key`` must agree.
        per: The period, in seconds.
        burst: Units the bucket holds.
        cap: Most units admitted within one slice.
        interval: Seconds of bucket one unit takes.
        span: Seconds an admission counts in the slice (the slice plus its guard).
        cost: Units this call is charged.
    """

    key: str
    limit: float
    per: float
    burst: float
    cap: float
    interval: float
    span: float
    cost: float


@dataclass(frozen=True, slots=True)
class StoredCharge:
    """What one reservation charged one stored rate, to settle once the call ends.

    Times are on the store's clock, and only the store reads them (``start``,
    when the call was admitted, is also what tests check window bounds on).
    """

    spec: QuotaSpec
    id: int
    start: float
    seg_start: float
    seg_end: float
    shifted: float
    epoch: float


@runtime_checkable
class RateStore(Protocol):
    """A place to keep rate-limit state shared by processes (see `anyfan.redis.RedisStore`).

    Every method may raise `anyfan.StoreUnavailable` when the store cannot be
    reached, and `ValueError` when processes disagree about a quota's limit.
    """

    async def reserve(self, specs: Sequence[QuotaSpec]) -> tuple[float, list[StoredCharge]]:
        """Charge every spec at the earliest start all of them allow.

        Returns the seconds to wait before the call may start (0 when it may
        start now) and one `StoredCharge` per spec, in order.
        """
        ...

    async def settle(self, charge: StoredCharge, used: float) -> float:
        """Settle ``charge`` with the units really used; return the units given back."""
        ...

    async def ping(self) -> None:
        """Check that the store answers (connecting if needed)."""
        ...

    async def aclose(self) -> None:
        """Close the running event loop's connection to the store."""
        ...
