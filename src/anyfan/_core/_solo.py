"""A `Rate` on its own, without a Fan: ``async with rate:`` and ``await rate.acquire(cost)``.

Each Rate gets a private `Limits` holding just itself, so a standalone
caller queues in arrival order and is admitted by the same arithmetic, with
the same window guarantees, as a Fan's calls on any backend. The Rate's
quota is one: Fans using the same Rate object draw from it too.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from typing import TYPE_CHECKING

from ._clock import loop_token
from ._gcra import Charge
from ._rate import Limits, Ticket, settle_stored

if TYPE_CHECKING:
    from ._rate import Rate


class RateTicket:
    """One admission by a `Rate`: what it was charged, to settle with the actual cost.

    ``await rate.acquire(cost=estimate)`` returns it once the rate admits the
    call. If the call turns out to use a different amount (tokens, say), call
    ``ticket.settle(used)``: the unused part of the charge that has not yet
    elapsed is given back to waiting callers, and any excess is charged at
    once. Settling is optional and happens at most once.

    Attributes:
        cost: The units charged at admission.
        start: When the rate admitted it, on the event loop's clock.
    """

    __slots__ = ("_limits", "_ticket")

    def __init__(self, limits: Limits, ticket: Ticket) -> None:
        self._limits = limits
        self._ticket = ticket

    def __repr__(self) -> str:
        settled = ", settled" if self.settled else ""
        return f"RateTicket(cost={self.cost:g}, start={self.start!r}{settled})"

    @property
    def cost(self) -> float:
        """The units charged at admission."""
        return self._ticket.costs[0]

    @property
    def start(self) -> float:
        """When the rate admitted the call, on the event loop's clock."""
        return self._ticket.start

    @property
    def settled(self) -> bool:
        """Whether `settle` was called."""
        return self._ticket.settled

    def settle(self, used: float) -> None:
        """Replace the charge with the ``used`` units the call really took.

        Raises:
            ValueError: If it was settled before, or ``used`` is not a
                non-negative finite number.
        """
        checked = _check_used(used)
        ticket = self._ticket
        if ticket.stored and not isinstance(ticket.stored[0][1], Charge):
            raise TypeError(
                "a Rate kept in a store is settled with `await ticket.settle_async(used)`"
            )
        self._settle(checked)

    async def settle_async(self, used: float) -> None:
        """`settle`, for any Rate: a Rate kept in a store settles in one round trip.

        Raises:
            ValueError: If it was settled before, or ``used`` is not a
                non-negative finite number.
        """
        self._settle(_check_used(used))
        await self._limits.flush(self._ticket)

    def _settle(self, used: float) -> None:
        ticket = self._ticket
        if ticket.settled:
            raise ValueError("this ticket was already settled")
        ticket.settled = True
        limits = self._limits
        now = limits.now()
        rate = limits.rates[0]
        if ticket.charges and limits._states[0].settle(ticket.charges[0], used, now) > 0:
            rate._notify()
        for _, stored in ticket.stored:
            settle_stored(ticket, rate, stored, used, now)


def _check_used(used: object) -> float:
    if isinstance(used, bool) or not isinstance(used, int | float):
        raise TypeError(f"used must be a number, got {used!r}")
    if not 0 <= used < math.inf:
        raise ValueError(f"used must be a non-negative, finite number, got {used!r}")
    return float(used)


class _Solo:
    """A Rate's private line, bound to the event loop it was last used on."""

    __slots__ = ("limits", "token")

    def __init__(self, rate: Rate) -> None:
        self.limits = Limits([rate])
        self.token: object = None

    def bound(self) -> Limits:
        # asyncio's running loop is its token, and far cheaper to fetch than anyio's.
        token = asyncio._get_running_loop() or loop_token()
        if token is not self.token:
            self.limits.bind()
            self.token = token
        return self.limits


_SOLOS: weakref.WeakKeyDictionary[Rate, _Solo] = weakref.WeakKeyDictionary()


def _solo(rate: Rate) -> Limits:
    solo = _SOLOS.get(rate)
    if solo is None:
        solo = _SOLOS[rate] = _Solo(rate)
    return solo.bound()


def _check_cost(cost: object) -> float:
    if isinstance(cost, bool) or not isinstance(cost, int | float):
        raise TypeError(f"cost must be a number, got {cost!r}")
    if not 0 <= cost < math.inf:
        raise ValueError(f"cost must be a non-negative, finite number, got {cost!r}")
    return float(cost)


async def acquire(rate: Rate, cost: float) -> RateTicket:
    """The body of `Rate.acquire`."""
    units = _check_cost(cost)
    limits = _solo(rate)
    ticket = Ticket(limits, None, [units])
    await limits._line.join(ticket._attempt, ticket._undo)
    if limits._stores:
        await limits.reserve_stored(ticket)
    return RateTicket(limits, ticket)


def has_capacity(rate: Rate, cost: float) -> bool:
    """The body of `Rate.has_capacity`."""
    units = _check_cost(cost)
    limits = _solo(rate)
    now = limits.now()
    return not limits.waiting and limits._states[0].earliest(units, now) <= now
