"""Rate-limit arithmetic: a GCRA with per-call cost, plus a one-second slice cap.

Pure code: every method takes the time ``now`` explicitly, so it runs the same
under any event loop or from a fake clock in tests.

Two rules decide when a call of ``cost`` units may start:

* The *bucket* (GCRA, the generic cell rate algorithm). Admitted work drains
  at ``limit / per`` units a second; the bucket holds at most ``burst`` units.
  A call is admitted when its cost fits, or, if it is larger than the whole
  bucket, when the bucket is empty (it then goes alone). Over any window of
  ``W`` seconds this admits less than ``rate * W + max(burst, largest cost)``.
* The *slice*. Providers enforce a per-minute quota in short slices, so no
  call may bring the cost admitted in the last second above one second's
  share of the rate (rounded up to a whole unit, or ``burst`` if larger); a
  call costing more than that starts only when the slice is empty. A call
  stays in the slice for a *guard* beyond the second, a margin for the delay
  between admission and the request reaching the provider: at least
  ``GUARD``, widened by the longest recent delay reported through
  `Gcra.observe_delay`, at most ``MAX_GUARD``.

The default burst is a few hundredths of a second of the rate: enough to
absorb the lateness of real timers, so sustained throughput stays at the
limit, and far below the one-second slice. Where the slice would be the
tighter rule (its guard makes it pass one second's share per ``SLICE +
guard`` seconds), the bucket drains at that pace instead: 99.5% of the rate
with the least guard, never below ``SLICE / (SLICE + MAX_GUARD)`` of it.

Refunds follow the bucket as a FIFO queue of work: a call that used less than
it was charged gives back the part of its charge that has not yet drained, and
nothing that has. Refunds therefore never let more through than the window
bounds allow for the costs as finally settled.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Final

from ._window import HighQuantile

#: The length, in seconds, of the slices providers enforce their limits in.
SLICE: Final = 1.0

#: The least extra seconds a call stays in the slice, so that the few milliseconds
#: between admission and the request reaching the provider cannot crowd two slices
#: into one.
GUARD: Final = 0.005

#: How many recent admission-to-send delays the guard covers (see `Gcra.observe_delay`).
DELAYS_KEPT: Final = 64

#: The most the guard widens to, however late requests are reported to leave: it
#: costs throughput (the slice passes one second's share per ``SLICE + guard``).
MAX_GUARD: Final = 0.05

#: Seconds of timer lateness the default burst absorbs without losing throughput.
TOLERANCE: Final = 0.05

#: The default burst never drops below this many units (unless the slice is smaller).
MIN_DEFAULT_BURST: Final = 2.0


def default_burst(rate: float) -> float:
    """Return the burst used when none is given, for ``rate`` units per second.

    Big enough to absorb ``TOLERANCE`` seconds of lateness and at least
    ``MIN_DEFAULT_BURST`` units, never more than one slice of the rate.
    """
    return min(rate * SLICE, max(MIN_DEFAULT_BURST, rate * TOLERANCE))


class Charge:
    """What one admitted call was charged: its cost and its place in the bucket's queue.

    Attributes:
        cost: Units charged so far (lowered by refunds, raised by extra charges).
        start: When the call may start.
    """

    __slots__ = (
        "cost",
        "queued",
        "seg_end",
        "seg_start",
        "settled",
        "slice_cost",
        "sliced",
        "start",
    )

    def __init__(
        self, cost: float, start: float, seg_start: float | None = None, seg_end: float = 0.0
    ) -> None:
        self.cost = cost
        self.start = start
        # The stretch of the bucket's queue (in seconds) this charge occupies; a charge
        # given one is in the bucket's queue and in the slice (see `Gcra.commit`).
        if seg_start is None:
            self.seg_start = self.seg_end = start
            self.queued = self.sliced = False
        else:
            self.seg_start = seg_start
            self.seg_end = seg_end
            self.queued = self.sliced = True
        self.slice_cost = cost
        self.settled = False

    def __repr__(self) -> str:
        return f"Charge(cost={self.cost!r}, start={self.start!r})"


class Gcra:
    """The state of one rate limit: when calls may start, and what they were charged.

    Args:
        limit: Units allowed per ``per`` seconds (positive, finite).
        per: The period in seconds (positive, finite).
        burst: Units the bucket holds; ``None`` for `default_burst`.
    """

    __slots__ = (
        "_burst",
        "_cap",
        "_delays",
        "_explicit_burst",
        "_guard",
        "_interval",
        "_last_start",
        "_limit",
        "_pending",
        "_per",
        "_slice",
        "_slice_sum",
        "_span",
        "_tat",
        "most",
        "rate",
    )

    def __init__(self, limit: float, per: float, burst: float | None = None) -> None:
        # Time at which the bucket runs empty ("theoretical arrival time").
        self._tat = -math.inf
        self._last_start = -math.inf
        # Charges whose stretch of the queue has not drained yet, in queue order.
        self._pending: deque[Charge] = deque()
        # Charges admitted in the last SLICE seconds, in start order, and their sum.
        self._slice: deque[Charge] = deque()
        self._slice_sum = 0.0
        # How long a call stays in the slice: SLICE plus the guard (see `observe_delay`).
        self._guard = GUARD
        self._span = SLICE + GUARD
        self._delays: HighQuantile | None = None
        self._set(limit, per, burst)

    def _set(self, limit: float, per: float, burst: float | None) -> None:
        self._limit = float(limit)
        self._per = float(per)
        #: Units per second.
        self.rate = rate = self._limit / self._per
        self._explicit_burst = burst
        self._burst = default_burst(rate) if burst is None else float(burst)
        # Rounded up to whole units, as providers count: 90/min is 2 in some seconds.
        self._cap = max(math.ceil(rate * SLICE), self._burst)
        # The bucket drains no faster than the slice (with its guard) can pass work,
        # so that it, not the slice, sets the pace: the bucket forgives a late
        # timer, while a full slice would pass the lateness on to every later call.
        self._interval = max(self._per / self._limit, self._span / self._cap)
        #: The largest cost that can ever be admitted: a whole period's, or the burst if larger.
        self.most = max(self._limit, self._burst)

    # -- reading -------------------------------------------------------------

    @property
    def limit(self) -> float:
        """Units allowed per period."""
        return self._limit

    @property
    def per(self) -> float:
        """The period, in seconds."""
        return self._per

    @property
    def interval(self) -> float:
        """Seconds of bucket each unit takes: ``per / limit``, or the slice's pace if slower."""
        return self._interval

    @property
    def burst(self) -> float:
        """Units the bucket holds (the default, unless one was given)."""
        return self._burst

    @property
    def given_burst(self) -> float | None:
        """The burst as given, or ``None`` when the default applies."""
        return self._explicit_burst

    @property
    def slice_cap(self) -> float:
        """Most units admitted within any one slice."""
        return self._cap

    @property
    def guard(self) -> float:
        """Seconds a call stays in the slice beyond ``SLICE`` (see `observe_delay`)."""
        return self._guard

    def level(self, now: float) -> float:
        """Units in the bucket at ``now`` (charged and not yet drained)."""
        return max(0.0, self._tat - now) / self._interval

    # -- admitting -----------------------------------------------------------

    def earliest(self, cost: float, now: float) -> float:
        """Return the earliest time, at or after ``now``, that a call of ``cost`` may start.

        Calls are served in order: never before the last reservation's start.
        """
        t = now if now > self._last_start else self._last_start
        gate = self._tat - max(self._burst - cost, 0.0) * self._interval
        if gate > t:
            t = gate
        if self._slice_sum + cost <= self._cap:
            return t  # it fits even counting everything still in the slice
        return self._slice_earliest(cost, t)

    def _slice_earliest(self, cost: float, t: float) -> float:
        """Return the earliest time from ``t`` at which ``cost`` fits in the slice."""
        entries = self._slice
        total = self._slice_sum
        cap = self._cap
        span = self._span
        # Entries that will have left the slice by ``t`` do not count.
        i = 0
        n = len(entries)
        while i < n and entries[i].start + span <= t:
            total -= entries[i].slice_cost
            i += 1
        if i == n or total + cost <= cap:
            return t
        while True:
            leaving = entries[i]
            total -= leaving.slice_cost
            i += 1
            # Once everything has left, even an oversized call may go (alone).
            if i == n or total + cost <= cap:
                return leaving.start + span

    def reserve(self, cost: float, now: float) -> Charge:
        """Charge a call of ``cost`` units asked for at ``now``, starting as early as allowed.

        Returns the `Charge`; its ``start`` is the earliest allowed time (``now``
        when the call may start at once). Reservations are served in order.
        """
        return self.commit(cost, self.earliest(cost, now), now)

    def commit(self, cost: float, start: float, now: float) -> Charge:
        """Charge a call of ``cost`` units asked for at ``now`` that starts at ``start``.

        ``start`` must be one `earliest` has just allowed: several rates
        admitting one call each answer `earliest` first, and all are charged
        only if all allow it.
        """
        self._last_start = start
        entries = self._slice
        if entries:
            # Most admissions see one earlier call leave the slice.
            span = self._span
            while entries and entries[0].start + span <= start:
                leaving = entries.popleft()
                leaving.sliced = False
                self._slice_sum -= leaving.slice_cost
            if not entries:
                self._slice_sum = 0.0  # no float residue once empty
        if cost <= 0:
            return Charge(cost, start)
        tat = self._tat
        seg_start = tat if tat > start else start
        self._tat = seg_end = seg_start + cost * self._interval
        charge = Charge(cost, start, seg_start, seg_end)
        pending = self._pending
        # `_drain`, inlined: most admissions find a drained charge at the front.
        while pending and pending[0].seg_end <= now:
            pending.popleft().queued = False
        pending.append(charge)
        entries.append(charge)
        self._slice_sum += cost
        return charge

    def _drain(self, now: float) -> None:
        """Forget charges whose stretch of the queue has fully drained by ``now``."""
        pending = self._pending
        while pending and pending[0].seg_end <= now:
            pending.popleft().queued = False

    # -- settling ------------------------------------------------------------

    def settle(self, charge: Charge, used: float, now: float) -> float:
        """Settle ``charge`` at ``now`` with the units the call really ``used``.

        If it used less, the part of the charge not yet drained from the bucket
        is given back (a call that never started gets back everything). If it
        used more, the difference is charged at ``now``. Returns the units
        given back, negative when more were charged.

        Raises:
            ValueError: If ``charge`` was settled before.
        """
        if charge.settled:
            raise ValueError("this charge was already settled")
        charge.settled = True
        excess = charge.cost - used
        if excess < 0:
            self._charge_extra(-excess, now)
            charge.cost = used
            return excess
        if excess == 0:
            return 0.0
        self._drain(now)
        if not charge.queued:
            return 0.0
        interval = self._interval
        keep_until = max(now, charge.seg_start + used * interval)
        # Positive but for float noise: the charge is queued, so its stretch ends after now.
        removed = max(0.0, charge.seg_end - keep_until)
        charge.seg_end -= removed
        # Everything queued behind this charge moves up by what it gave back.
        pending = self._pending
        for i in range(pending.index(charge) + 1, len(pending)):
            pending[i].seg_start -= removed
            pending[i].seg_end -= removed
        self._tat -= removed
        units = removed / interval
        if units > excess * (1 - 1e-9):
            units = excess  # all of it, without float residue
        charge.cost -= units
        if charge.sliced:
            charge.slice_cost -= units
            self._slice_sum -= units
        return units

    def _charge_extra(self, units: float, now: float) -> None:
        self._tat = max(self._tat, now) + units * self._interval
        # Recorded in the slice at the latest start so far, keeping it in order.
        extra = Charge(units, max(now, self._last_start))
        extra.sliced = True
        self._slice.append(extra)
        self._slice_sum += units

    # -- adjusting -----------------------------------------------------------

    def configure(self, limit: float, per: float, burst: float | None, now: float) -> None:
        """Change the limit at ``now``; work already queued drains at the new rate."""
        old = self._interval
        self._set(limit, per, burst)
        self._rescale(old, now)

    def observe_delay(self, delay: float, now: float) -> None:
        """Take in that a call admitted ``delay`` seconds before ``now`` has just left.

        The guard becomes ``GUARD`` (the margin for what the client cannot
        see: the network, the provider's own queue) plus the longest of the
        last ``DELAYS_KEPT`` delays, at most ``MAX_GUARD``: it widens at once
        for a longer delay, and narrows again as slow ones age out. While it
        is wider, the slice passes one second's share per ``SLICE + guard``
        seconds, so a request sent that late cannot land in the provider's
        next slice. A NaN or a negative delay (clock noise) tells nothing and
        is ignored.
        """
        if not delay >= 0:
            return
        delays = self._delays
        if delays is None:
            # Cautious until a quarter of them is known: the first requests of a run
            # (new connections, cold caches) are the slowest to leave.
            delays = self._delays = HighQuantile(
                DELAYS_KEPT, quantile=1.0, initial=MAX_GUARD - GUARD
            )
        guard = min(MAX_GUARD, GUARD + delays.add(delay))
        if guard != self._guard:
            old = self._interval
            self._guard = guard
            self._span = SLICE + guard
            self._set(self._limit, self._per, self._explicit_burst)
            self._rescale(old, now)

    def _rescale(self, old: float, now: float) -> None:
        """Let queued work drain at the new interval from ``now`` (it was ``old``)."""
        ratio = self._interval / old
        if ratio == 1.0:
            return

        def rescale(t: float) -> float:
            return now + (t - now) * ratio if t > now else t

        self._tat = rescale(self._tat)
        for charge in self._pending:
            charge.seg_start = rescale(charge.seg_start)
            charge.seg_end = rescale(charge.seg_end)

    def correct(self, remaining: float, reset: float | None, now: float) -> None:
        """Take in what the provider says is left, so admissions never outrun it.

        Args:
            remaining: Units the provider says are still available now.
            reset: Seconds until the provider's bucket is full again, if known.
            now: The time the provider answered.
        """
        available = remaining
        if reset is not None:
            available = min(available, self._limit - reset * self.rate)
        if available < self._burst:
            self._tat = max(self._tat, now + (self._burst - available) * self._interval)

    def shift(self, delta: float) -> None:
        """Move every stored time by ``delta`` seconds (when the clock is swapped)."""
        self._tat += delta
        self._last_start += delta
        for charge in self._pending:
            charge.seg_start += delta
            charge.seg_end += delta
        for charge in self._slice:
            charge.start += delta

    def __repr__(self) -> str:
        return f"Gcra(limit={self._limit!r}, per={self._per!r}, burst={self._burst!r})"


def admit_all(
    states: Sequence[Gcra], costs: Sequence[float], now: float, not_before: float
) -> list[Charge] | float:
    """Charge one call under every rate in ``states`` (at ``costs``) if each lets it start now.

    ``not_before`` is when anything else gating the start (a shared pause)
    allows it. Returns the charges, one per state. Else nothing is charged,
    and it returns the earliest time from which every rate might let it start.
    """
    t = not_before
    for state, cost in zip(states, costs, strict=True):
        # `earliest`'s usual answer, inlined: no call waits before it, and both the
        # bucket and the slice have room.
        burst = state._burst
        if (
            state._last_start <= now
            and state._tat - (burst - cost if burst > cost else 0.0) * state._interval <= now
            and state._slice_sum + cost <= state._cap
        ):
            continue
        at = state.earliest(cost, now)
        if at > t:
            t = at
    if t > now:
        return t
    return [state.commit(cost, now, now) for state, cost in zip(states, costs, strict=True)]
