"""`Rate` (one rate limit) and `Limits` (several, enforced together, first come first served).

The arithmetic lives in `_gcra`; this module adds validation, the per-item
cost functions, and the waiting: callers queue in one line across all the
limits of a Fan, and the head of the line sleeps until every limit admits it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import weakref
from typing import TYPE_CHECKING, Any, Literal

import anyio

from ._clock import Clock, loop_token
from ._errors import CostTooLarge, StoreUnavailable
from ._gate import Line, SleepUntil, Timebase
from ._gcra import SLICE, Charge, Gcra, admit_all
from ._sent import ADMITTED
from ._stats import AdmissionMeter, LimitStats
from ._store import QuotaSpec, RateStore, StoredCharge
from ._validate import check_function, check_number, check_ratio

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from ._retry import Pause

#: What a stored Rate does when its store cannot be reached: fail the call, or admit locally.
OnStoreError = Literal["raise", "local"]

#: The share of its limit a stored Rate admits on its own while its store is down.
DEFAULT_LOCAL_SHARE = 0.25

#: Seconds a cancelled or finished call's refund to a store may take before it is dropped.
_REFUND_TIMEOUT = 2.0


def _format(x: float) -> str:
    return f"{x:g}"


class Rate:
    """A rate limit: at most ``limit`` units every ``per`` seconds.

    Every call costs one unit unless ``cost`` says otherwise, so
    ``Rate(500, per=60)`` is 500 requests per minute and
    ``Rate(200_000, per=60, cost=estimate_tokens)`` is 200,000 tokens per
    minute. Give several to a Fan and a call starts only when all admit it.

    Calls are spaced out evenly: over any window of ``W >= 1`` seconds at most
    ``limit * W / per + burst`` units start, and within any one second at most
    one second's share, ``limit / per`` rounded up to whole units (or ``burst``
    if larger). A single call costing more than that is let through alone.

    One Rate is one quota: Fans and runs that share a Rate object share it.

    Args:
        limit: Units allowed per ``per`` seconds.
        per: The period, in seconds (default 1).
        cost: ``cost(item) -> units`` the call will use, estimated before it starts.
        burst: Units that may start at once after an idle spell. The default is
            a few hundredths of a second's worth (at least 2, at most one
            second's): enough to keep throughput at the limit, small enough to
            never trip a provider that enforces the limit per second.
        actual: ``actual(item, result) -> units`` the call really used, once it
            has ended. If less than the estimate, the unused part of the
            charge that has not yet elapsed is given back; if more, the extra
            is charged at once. For a call that raised, ``result`` is the
            exception: return 0 when the provider refused the call without
            doing the work (a 4xx other than 429), so it costs nothing. If
            ``actual`` raises for an exception (as one written for results
            only does), the estimate is kept and the call's own error stands.
        store: Keep this quota's state in a shared store (an
            `anyfan.redis.RedisStore`), so that every process building a Rate
            with the same store, ``key``, ``limit`` and ``per`` shares one quota,
            with the same guarantees as a local Rate across all of them. A
            process that disagrees about ``limit`` or ``per`` gets a `ValueError`.
        key: The quota's name in the store (required with ``store``); never put
            a secret in it.
        on_store_error: ``"raise"`` (the default): when the store cannot be
            reached, calls fail with `anyfan.StoreUnavailable` (which `Retry`
            retries). ``"local"``: they are admitted by a local Rate at
            ``local_share`` of the limit instead, until the store answers again.
        local_share: The fraction of the limit admitted locally while the store
            is down with ``on_store_error="local"`` (default 0.25: four processes
            falling back at once stay within the quota). Set ``1 / processes``.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If a number is not positive and finite.
    """

    __slots__ = (
        "__weakref__",
        "_actual",
        "_cost",
        "_fallback",
        "_key",
        "_local_share",
        "_state",
        "_store",
        "_timebase",
        "_watchers",
    )

    def __init__(
        self,
        limit: float,
        per: float = 1.0,
        *,
        cost: Callable[[Any], float] | None = None,
        burst: float | None = None,
        actual: Callable[[Any, Any], float] | None = None,
        store: RateStore | None = None,
        key: str | None = None,
        on_store_error: OnStoreError = "raise",
        local_share: float = DEFAULT_LOCAL_SHARE,
    ) -> None:
        # The limit, period and burst are stored once, in the GCRA that enforces them.
        checked = _check_limit(limit, per, burst)
        self._state = Gcra(*checked)
        self._cost = check_function(cost, "cost")
        self._actual = check_function(actual, "actual")
        self._store, self._key = _check_store(store, key)
        if on_store_error not in ("raise", "local"):
            raise ValueError(f'on_store_error must be "raise" or "local", got {on_store_error!r}')
        share = check_number(local_share, "local_share", at_most=1)  # some, up to all
        self._local_share = share
        # The local stand-in while the store is down ("local"), at its share of the limit.
        self._fallback = (
            Gcra(checked[0] * share, checked[1], None if checked[2] is None else checked[2] * share)
            if store is not None and on_store_error == "local"
            else None
        )
        self._timebase = Timebase()
        # Plain weak references, each dropping itself when its Limits goes:
        # walking a WeakSet costs about 1 µs, paid on every refund.
        self._watchers: list[weakref.ref[Limits]] = []

    def __repr__(self) -> str:
        parts = [_format(self.limit), f"per={_format(self.per)}"]
        if self._state.given_burst is not None:
            parts.append(f"burst={_format(self._state.given_burst)}")
        for name, fn in (("cost", self._cost), ("actual", self._actual)):
            if fn is not None:
                parts.append(f"{name}={getattr(fn, '__name__', type(fn).__name__)}")
        if self._store is not None:
            parts.append(f"store={self._store!r}, key={self._key!r}")
            if self._fallback is not None:
                parts.append(f"on_store_error='local', local_share={self._local_share:g}")
        return f"Rate({', '.join(parts)})"

    @property
    def store(self) -> RateStore | None:
        """The shared store this Rate's quota lives in, or ``None`` for a local Rate."""
        return self._store

    @property
    def key(self) -> str | None:
        """The quota's name in its store, or ``None`` for a local Rate."""
        return self._key

    @property
    def name(self) -> str:
        """The limit as written, such as ``"500/60s"``."""
        return f"{_format(self.limit)}/{_format(self.per)}s"

    @property
    def limit(self) -> float:
        """Units allowed per period."""
        return self._state.limit

    @property
    def per(self) -> float:
        """The period, in seconds."""
        return self._state.per

    @property
    def rate(self) -> float:
        """Units allowed per second."""
        return self._state.rate

    @property
    def burst(self) -> float:
        """Units that may start at once after an idle spell."""
        return self._state.burst

    def cost_of(self, item: Any) -> float:
        """Return the units a call on ``item`` is expected to use.

        Raises:
            TypeError, ValueError: If ``cost`` returns something other than a
                non-negative finite number.
        """
        if self._cost is None:
            return 1.0
        units = self._cost(item)
        if type(units) in (int, float) and 0 <= units < math.inf:
            return float(units)  # the common case, without building an error message
        return check_number(units, f"cost({item!r:.40})", positive=False)

    def actual_of(self, item: Any, result: Any) -> float | None:
        """Return the units a call really used, or ``None`` when no ``actual`` was given."""
        if self._actual is None:
            return None
        units = self._actual(item, result)
        if type(units) in (int, float) and 0 <= units < math.inf:
            return float(units)
        return check_number(units, f"actual({item!r:.40}, ...)", positive=False)

    def adjust(
        self,
        *,
        limit: float | None = None,
        per: float | None = None,
        burst: float | None = None,
        now: float | None = None,
    ) -> None:
        """Change the limit at run time; waiting callers are rescheduled at once.

        Only the arguments given change. Work already admitted drains at the
        new rate. Call it from the thread that runs the Fan's event loop.

        Args:
            limit: New units per period.
            per: New period, in seconds.
            burst: New burst, in units.
            now: The current time; by default the running event loop's clock.

        Raises:
            TypeError: If the Rate is kept in a store, where every process
                must agree on the limit.
        """
        if self._store is not None:
            raise TypeError(
                "a Rate kept in a store cannot be adjusted: every process sharing its "
                "key must use the same limit and per"
            )
        state = self._state
        checked = _check_limit(
            state.limit if limit is None else limit,
            state.per if per is None else per,
            state.given_burst if burst is None else burst,
        )
        state.configure(*checked, _now(now))
        self._notify()

    @property
    def guard(self) -> float:
        """Seconds a call stays in the one-second slice beyond it (see `report_delay`)."""
        return self._state.guard

    def report_delay(self, seconds: float, *, now: float | None = None) -> None:
        """Report that a call this rate admitted ``seconds`` ago has just been sent.

        The slice's guard keeps wider than the longest recent delay (within
        a bound; see docs/explanation/limits.md), so that a request sent
        late cannot crowd into the provider's next slice.
        `anyfan.openai.fan` reports every request it sends; call this from
        your own transport to do the same.

        Args:
            seconds: The delay between admission and the request leaving.
            now: The current time; by default the event loop's clock.
        """
        self._state.observe_delay(seconds, _now(now))

    def observe(
        self, remaining: float, reset: float | None = None, *, now: float | None = None
    ) -> None:
        """Take in the provider's count (rate-limit headers) so admissions never outrun it.

        Args:
            remaining: Units the provider says are left (``x-ratelimit-remaining-*``).
            reset: Seconds until its quota is full again (``x-ratelimit-reset-*``).
            now: When the provider answered; by default the event loop's clock.

        A Rate kept in a store ignores it: its processes pace one quota together.
        """
        if self._store is None:
            self._state.correct(remaining, reset, _now(now))

    async def acquire(self, cost: float = 1) -> _solo.RateTicket:
        """Wait until this rate admits ``cost`` units; return the `RateTicket` to settle.

        For using a Rate on its own, without a Fan (aiolimiter's
        ``await limiter.acquire(amount)``): callers are admitted in arrival
        order, under the same guarantees as a Fan's calls, on any backend.
        A Fan given this Rate draws from the same quota. If the call then
        uses a different amount, ``ticket.settle(used)`` corrects the charge.
        Like a Fan, a Rate serves one event loop at a time.

        Raises:
            TypeError, ValueError: If ``cost`` is not a non-negative finite number.
        """
        return await _solo.acquire(self, cost)

    def has_capacity(self, cost: float = 1) -> bool:
        """Whether ``acquire(cost)`` would be admitted right now, without waiting.

        Raises:
            TypeError: For a Rate kept in a store, which only the store can answer.
        """
        if self._store is not None:
            raise TypeError("has_capacity needs a local Rate; a stored one asks its store")
        return _solo.has_capacity(self, cost)

    def _spec(self, cost: float) -> QuotaSpec:
        state = self._state
        assert self._key is not None
        return QuotaSpec(
            self._key,
            state.limit,
            state.per,
            state.burst,
            state.slice_cap,
            state.interval,
            SLICE + state.guard,  # this process's guard, widened by its own send delays
            cost,
        )

    async def __aenter__(self) -> _solo.RateTicket:
        """``async with rate:`` waits for one unit (as aiolimiter's ``async with limiter:``)."""
        return await _solo.acquire(self, 1)

    async def __aexit__(self, *exc_info: object) -> None:
        """Nothing to release: a rate limits starts, not calls in flight."""

    def _notify(self) -> None:
        """Tell every line waiting on this rate to look again."""
        for ref in tuple(self._watchers):  # a ref may drop itself meanwhile
            limits = ref()
            # None only if collected during this loop (before its ref dropped itself).
            if limits is not None:  # pragma: no branch
                limits._line.poke()

    def _rebase(self, token: object, now: float) -> None:
        shift = self._timebase.rebase(token, now)
        if shift:
            self._state.shift(shift)


def _check_limit(limit: object, per: object, burst: object) -> tuple[float, float, float | None]:
    """Check a rate's numbers, including that ``limit / per`` is a usable rate."""
    checked_limit = check_number(limit, "limit")
    checked_per = check_number(per, "per")
    check_ratio(checked_limit, checked_per, "limit / per")
    return checked_limit, checked_per, None if burst is None else check_number(burst, "burst")


def _check_store(store: object, key: object) -> tuple[RateStore | None, str | None]:
    if store is None:
        if key is not None:
            raise ValueError("key names a quota in a store: give store= too")
        return None, None
    if not isinstance(store, RateStore):
        raise TypeError(f"store must be a store such as anyfan.redis.RedisStore, got {store!r}")
    if not isinstance(key, str):
        raise TypeError(f"a Rate with a store needs key=, the quota's name, got {key!r}")
    if not key or len(key) > 200 or not key.isprintable():
        raise ValueError(f"key must be 1 to 200 printable characters, got {key!r}")
    return store, key


def _now(now: float | None) -> float:
    if now is not None:
        return now
    try:
        import anyio

        return anyio.current_time()
    except RuntimeError:
        # No event loop: nothing is waiting, so keep queued work as it is.
        return math.inf


def _is_aiolimiter(limit: object) -> bool:
    return type(limit).__module__.partition(".")[0] == "aiolimiter" and hasattr(limit, "acquire")


class Ticket:
    """An admitted call: what it was charged, to settle once it ends.

    Attributes:
        item: The item the call is for.
        costs: The units charged, one per limit.
        start: When it was admitted, on the limiter's clock.
    """

    __slots__ = (
        "_limits",
        "charges",
        "costs",
        "item",
        "local_costs",
        "pending",
        "settled",
        "start",
        "stored",
    )

    def __init__(self, limits: Limits, item: Any, costs: list[float]) -> None:
        self._limits = limits
        self.item = item
        self.costs = costs
        # The costs of the rates kept in this process, in the order of ``limits._states``.
        self.local_costs = costs if limits._all_local else [costs[i] for i in limits._local]
        self.charges: list[Any] = []
        # Charges held by stored rates: (position in ``limits.rates``, charge), where the
        # charge is a `StoredCharge`, or a local `Charge` taken while the store was down.
        # Empty tuples until a stored rate is involved: nothing allocated for local rates.
        self.stored: Sequence[tuple[int, StoredCharge | Charge]] = ()
        # Settlements owed to stores, sent by `Limits.flush`.
        self.pending: Sequence[tuple[RateStore, StoredCharge, float]] = ()
        self.start = math.nan
        self.settled = False

    def __repr__(self) -> str:
        return f"Ticket(costs={self.costs!r}, start={self.start!r})"

    def _attempt(self, now: float) -> float | None:
        limits = self._limits
        states = limits._states
        costs = self.local_costs
        pause = limits._pause_schedule
        if pause is not None and not pause.active:
            pause = None  # no pause is holding starts: nothing to ask it, nothing to count
        # Every rate checked, and charged only if all (and the pause) allow, in one pass.
        charges = admit_all(states, costs, now, now if pause is None else pause.earliest(now))
        if not isinstance(charges, list):
            return charges  # not before this time
        if pause is not None:
            pause.take(now)
        self.charges = charges
        self.start = now
        limits._meter.record(self.costs, now)
        return None

    def _undo(self) -> None:
        limits = self._limits
        now = limits._line.now()
        if limits._pause_schedule is not None:
            limits._pause_schedule.untake()
        for state, charge in zip(limits._states, self.charges, strict=True):
            state.settle(charge, 0.0, now)
        limits._meter.record([-cost for cost in self.costs], now)
        self.charges = []
        limits._notify_others()


class Limits:
    """Admits calls under every limit at once, strictly in arrival order.

    ``await limits.acquire(item)`` waits until every rate admits the call and
    returns a `Ticket`; ``limits.settle(ticket, result)`` afterwards applies
    the rates' ``actual`` costs. A large call at the head of the line is never
    overtaken by small ones behind it. A cancelled waiter gives back anything
    reserved for it and never holds up those behind it. Works on asyncio and
    trio; no event-loop state is held while nobody waits.

    Args:
        limits: `Rate` objects; under asyncio an ``aiolimiter.AsyncLimiter``
            is accepted too (one unit per call), for interop.
        pause: A shared `Pause` whose hold also gates admission.
        clock: Returns the current time; defaults to `anyio.current_time`.
        sleep_until: Sleeps until a time on ``clock``; defaults to `anyio.sleep_until`.
    """

    __slots__ = (
        "__weakref__",
        "_actuals",
        "_all_local",
        "_all_states",
        "_externals",
        "_line",
        "_local",
        "_meter",
        "_pause",
        "_pause_schedule",
        "_rates",
        "_states",
        "_stores",
    )

    def __init__(
        self,
        limits: Iterable[Rate | Any] = (),
        *,
        pause: Pause | None = None,
        clock: Clock | None = None,
        sleep_until: SleepUntil | None = None,
    ) -> None:
        rates: list[Rate] = []
        externals: list[Any] = []
        for limit in limits:
            if isinstance(limit, Rate):
                rates.append(limit)
            elif _is_aiolimiter(limit):
                externals.append(limit)
            else:
                raise TypeError(
                    f"limits must be anyfan.Rate objects (or aiolimiter.AsyncLimiter), "
                    f"got {limit!r}"
                )
        self._rates = tuple(rates)
        self._local = tuple(i for i, rate in enumerate(rates) if rate._store is None)
        self._all_local = len(self._local) == len(rates)
        self._states = tuple(rates[i]._state for i in self._local)
        self._all_states = tuple(rate._state for rate in rates)
        # The local rates that settle at an ``actual`` cost: (position in ``_states``,
        # position in ``rates``, rate).
        self._actuals = tuple(
            (j, i, rates[i]) for j, i in enumerate(self._local) if rates[i]._actual is not None
        )
        # The stored rates, grouped by store: one round trip per store per admission.
        stores: dict[int, tuple[RateStore, list[int]]] = {}
        for i, rate in enumerate(rates):
            if rate._store is not None:
                stores.setdefault(id(rate._store), (rate._store, []))[1].append(i)
        self._stores = tuple((store, tuple(members)) for store, members in stores.values())
        self._externals = tuple(externals)
        self._pause = pause
        self._pause_schedule = None if pause is None else pause.schedule
        self._line = Line(clock, sleep_until)
        self._meter = AdmissionMeter(len(rates))
        for rate in rates:
            rate._watchers.append(weakref.ref(self, rate._watchers.remove))

    def __repr__(self) -> str:
        return f"Limits({[*self._rates, *self._externals]!r})"

    @property
    def rates(self) -> tuple[Rate, ...]:
        """The rates enforced, in the order given."""
        return self._rates

    @property
    def waiting(self) -> int:
        """How many callers are queued for admission."""
        return self._line.waiting

    def now(self) -> float:
        """Return the current time on the limiter's clock."""
        return self._line.now()

    def bind(self) -> None:
        """Prepare for use on the running event loop; call once at the start of each run.

        If a different event loop (with its own clock) used these limits
        before, stored times are moved onto the new clock.

        Raises:
            RuntimeError: If an aiolimiter limit is given and the loop is not asyncio.
        """
        token = loop_token()
        self._line.bind(token)
        now = self._line.now()
        for rate in self._rates:
            rate._rebase(token, now)
        if self._pause is not None:
            self._pause._line.bind(token)
            self._pause._rebase(token, now)
        if self._externals:
            _require_asyncio()

    async def acquire(self, item: Any) -> Ticket:
        """Wait until every limit admits a call on ``item``; return its `Ticket`.

        Call it right before the call starts (after taking a concurrency
        slot), so that admission and start coincide. The same as `ticket`,
        then `try_admit`, then `admit` if that said no.

        Raises:
            TypeError, ValueError: If a rate's ``cost`` function returns nonsense.
            CostTooLarge: If the cost is more than a rate admits in one period
                (then nothing is charged).
            RuntimeError: If an aiolimiter limit is used outside asyncio.
        """
        ticket = self.ticket(item)
        if not self.try_admit(ticket):
            await self.admit(ticket)
        return ticket

    def ticket(self, item: Any) -> Ticket:
        """Price a call on ``item`` under every rate: its `Ticket`, not admitted yet.

        Raises:
            TypeError, ValueError: If a rate's ``cost`` function returns nonsense.
            CostTooLarge: If the cost is more than a rate admits in one period.
        """
        rates = self._rates
        # A rate without a ``cost`` function charges 1 unit: no call to find that out.
        costs = [1.0 if rate._cost is None else rate.cost_of(item) for rate in rates]
        for rate, cost in zip(rates, costs, strict=True):
            if cost > rate._state.most:  # could never fit: fail, charge nothing
                raise CostTooLarge(cost, rate.name, rate._state.most)
        return Ticket(self, item, costs)

    def try_admit(self, ticket: Ticket) -> bool:
        """Admit ``ticket`` now if every limit lets its call start without waiting.

        The usual case of `acquire`, without a coroutine. When it returns
        ``False`` nothing was charged, and `admit` waits. Limits with a store
        or an aiolimiter limit always say ``False``: only `admit` asks those.
        """
        if self._externals or self._stores or not self._line.try_now(ticket._attempt):
            return False
        ADMITTED.set(ticket)  # for `note_sent`, when the call's request leaves
        return True

    async def admit(self, ticket: Ticket) -> None:
        """Wait until every limit admits ``ticket`` (from `ticket`; `try_admit` said no).

        Raises:
            RuntimeError: If an aiolimiter limit is used outside asyncio.
        """
        for external in self._externals:
            _require_asyncio()
            await external.acquire()
        # `join` tries at once itself when nobody is in line (as `try_now` would).
        await self._line.join(ticket._attempt, ticket._undo)
        if self._stores:
            await self.reserve_stored(ticket)
        ADMITTED.set(ticket)

    async def reserve_stored(self, ticket: Ticket) -> None:
        """Charge the ticket's stored rates (one round trip per store) and wait for its start.

        Called once the local rates and the pause have admitted the ticket. If
        the caller is cancelled, or a store fails, everything charged for the
        ticket so far is given back before the error propagates.

        Raises:
            StoreUnavailable: If a store cannot be reached and its rates do not
                fall back to a local share.
        """
        delay = 0.0
        try:
            for store, members in self._stores:
                try:
                    wait, charges = await store.reserve(
                        [self._rates[i]._spec(ticket.costs[i]) for i in members]
                    )
                except StoreUnavailable:
                    if any(self._rates[i]._fallback is None for i in members):
                        raise
                    wait = self._reserve_locally(ticket, members)
                else:
                    ticket.stored = [*ticket.stored, *zip(members, charges, strict=True)]
                delay = max(delay, wait)
            if delay > 0:
                await anyio.sleep(delay)
        except BaseException:
            with anyio.CancelScope(shield=True), anyio.move_on_after(_REFUND_TIMEOUT):
                await self._refund(ticket)
            raise

    def _reserve_locally(self, ticket: Ticket, members: tuple[int, ...]) -> float:
        now = self._line.now()
        start = now
        for i in members:
            fallback = self._rates[i]._fallback
            assert fallback is not None
            charge = fallback.reserve(ticket.costs[i], now)
            ticket.stored = [*ticket.stored, (i, charge)]
            start = max(start, charge.start)
        return start - now

    async def _refund(self, ticket: Ticket) -> None:
        """Give back everything charged for a ticket whose call never started."""
        now = self._line.now()
        for state, charge in zip(self._states, ticket.charges, strict=False):
            state.settle(charge, 0.0, now)
        ticket.charges = []
        stored, ticket.stored = ticket.stored, ()
        for i, charge in stored:
            if isinstance(charge, Charge):
                fallback = self._rates[i]._fallback
                assert fallback is not None
                fallback.settle(charge, 0.0, now)
            else:
                store = self._rates[i]._store
                assert store is not None
                # If the store is down it keeps the charge: conservative, never an overshoot.
                with contextlib.suppress(StoreUnavailable):
                    await store.settle(charge, 0.0)
        self._notify_others()

    async def flush(self, ticket: Ticket) -> None:
        """Send the settlements a `settle` left for stores (refunds are best effort)."""
        pending, ticket.pending = ticket.pending, ()
        for store, charge, used in pending:
            # If the store is down the estimate stays charged: conservative, never an overshoot.
            with contextlib.suppress(StoreUnavailable):
                await store.settle(charge, used)

    def settle(self, ticket: Ticket, outcome: object) -> list[float]:
        """Settle ``ticket`` once its call ended with ``outcome`` (its result or exception).

        For rates with an ``actual`` function, the estimate is replaced with
        what it returns for ``outcome``. A call that raised keeps its estimate
        when ``actual`` raises too. Returns the units each rate was finally charged.

        Raises:
            ValueError: If the ticket was settled before.
            TypeError, ValueError: If ``actual`` returns nonsense (the estimate is kept).
        """
        if ticket.settled:
            raise ValueError("this ticket was already settled")
        ticket.settled = True
        if not self._actuals and not ticket.stored:
            return ticket.costs  # every rate charged as estimated: nothing to settle
        failed = isinstance(outcome, BaseException)
        now = self._line.clock()
        units = ticket.costs
        rates = self._rates
        charges = ticket.charges
        # Only the local rates with an ``actual`` function: the others stay charged as estimated.
        for j, i, rate in self._actuals if charges else ():
            charge = charges[j]
            try:
                used = rate.actual_of(ticket.item, outcome)
            except Exception:
                if failed:  # an ``actual`` written for results only: keep the estimate
                    continue
                raise
            assert used is not None  # the rate has an ``actual`` function
            if units is ticket.costs:
                units = list(units)
            units[i] = used
            if self._states[j].settle(charge, used, now) > 0:
                rate._notify()
        for i, stored in ticket.stored:
            rate = rates[i]
            try:
                used = rate.actual_of(ticket.item, outcome)
            except Exception:
                if failed:
                    continue
                raise
            if used is None:
                continue
            if units is ticket.costs:
                units = list(units)
            units[i] = used
            settle_stored(ticket, rate, stored, used, now)
        return units

    def adjust(
        self,
        rate: Rate | int,
        *,
        limit: float | None = None,
        per: float | None = None,
        burst: float | None = None,
    ) -> None:
        """Change one of the rates (by object or position) at run time; see `Rate.adjust`."""
        target = self._rates[rate] if isinstance(rate, int) else rate
        target.adjust(limit=limit, per=per, burst=burst, now=self._line.now())

    def report_delay(self, seconds: float, now: float) -> None:
        """Report to every rate that a call admitted ``seconds`` before ``now`` has just left.

        `Rate.report_delay` for all the rates at once; `note_sent` calls it.
        """
        for state in self._all_states:
            state.observe_delay(seconds, now)

    def stats(self) -> tuple[LimitStats, ...]:
        """Per-rate admitted units per second over the recent window, against each limit."""
        now = self._line.now()
        return tuple(
            LimitStats(rate.name, rate.rate, admitted)
            for rate, admitted in zip(self._rates, self._meter.rates(now), strict=True)
        )

    def _notify_others(self) -> None:
        for rate in self._rates:
            rate._notify()


def settle_stored(
    ticket: Ticket, rate: Rate, stored: StoredCharge | Charge, used: float, now: float
) -> None:
    """Settle a stored rate's charge: at once if it was taken locally, else by `Limits.flush`."""
    if isinstance(stored, Charge):
        assert rate._fallback is not None
        rate._fallback.settle(stored, used, now)
    else:
        assert rate._store is not None
        ticket.pending = [*ticket.pending, (rate._store, stored, used)]


def _require_asyncio() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "aiolimiter.AsyncLimiter works only under asyncio; use anyfan.Rate, "
            "which works on every backend"
        ) from None


# Rate's standalone methods live there; imported last, as it builds on Limits.
from . import _solo  # noqa: E402
