"""`Rate` on its own: ``async with rate:`` and ``await rate.acquire(cost=...)``, every backend."""

from __future__ import annotations

import math
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anyfan import Fan, Rate, RateTicket
from strategies import CLOCKED_BACKEND_IDS, HAS_TRIO, bound_windows, clocked_backend, rate_specs

pytestmark = pytest.mark.anyio


@pytest.fixture(params=CLOCKED_BACKEND_IDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """Every backend; trio on an autojumping MockClock, asyncio on its real clock."""
    return clocked_backend(request.param)


def most_in_any_window(times: list[float], costs: list[float], width: float) -> float:
    best = 0.0
    for i, start in enumerate(times):
        inside = zip(times[i:], costs[i:], strict=True)
        best = max(best, sum(c for t, c in inside if t < start + width))
    return best


async def test_async_with_admits_at_most_the_rate_in_any_second() -> None:
    rate = Rate(1000, burst=5)
    tickets: list[RateTicket] = []

    async def worker() -> None:
        for _ in range(15):
            async with rate as ticket:
                tickets.append(ticket)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(worker)
    times = sorted(t.start for t in tickets)
    assert len(times) == 150
    # The guarantee a Fan's calls get, from the same arithmetic: over a window
    # of W seconds, no more than W seconds' share plus the burst.
    assert most_in_any_window(times, [1.0] * 150, 0.05) <= 1000 * 0.05 + 5
    assert most_in_any_window(times, [1.0] * 150, 1.0) <= 1000
    assert all(t.cost == 1 for t in tickets)


async def test_acquire_charges_the_cost_and_large_costs_wait_their_turn() -> None:
    rate = Rate(10_000, per=1, burst=100)
    costs = [50.0, 400.0, 10.0, 600.0, 5.0, 900.0, 1.0]
    tickets = [await rate.acquire(cost=c) for c in costs]
    assert [t.cost for t in tickets] == costs
    starts = [t.start for t in tickets]
    assert starts == sorted(starts)
    # Each call is charged as it starts, so a window holds at most W seconds'
    # share plus the burst, not counting the last call to start in it.
    for i, first in enumerate(starts):
        inside = [c for t, c in zip(starts[i:], costs[i:], strict=True) if t < first + 0.1]
        assert sum(inside[:-1]) <= 10_000 * 0.1 + 100


async def test_settling_below_the_estimate_gives_room_back() -> None:
    rate = Rate(10, per=1, burst=1)
    ticket = await rate.acquire(cost=5)
    assert not rate.has_capacity(5)
    ticket.settle(0)
    assert ticket.settled
    assert rate.has_capacity(1)
    with pytest.raises(ValueError, match="already settled"):
        ticket.settle(0)
    assert "settled" in repr(ticket)


async def test_settle_and_acquire_check_their_numbers() -> None:
    rate = Rate(10)
    with pytest.raises(ValueError, match="cost"):
        await rate.acquire(cost=-1)
    with pytest.raises(TypeError, match="cost"):
        await rate.acquire(cost="1")  # type: ignore[arg-type]
    ticket = await rate.acquire()
    with pytest.raises(ValueError, match="used"):
        ticket.settle(float("inf"))
    with pytest.raises(TypeError, match="used"):
        ticket.settle(True)


async def test_settling_above_the_estimate_charges_the_extra() -> None:
    rate = Rate(10, per=1, burst=1)
    ticket = await rate.acquire(cost=1)
    ticket.settle(20)
    assert not rate.has_capacity(1)


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    rate = Rate(10, per=1, burst=1)
    await rate.acquire()
    with anyio.move_on_after(0.01):
        await rate.acquire(cost=5)  # waits ~0.5 s: cancelled first
    nxt = await rate.acquire()
    assert nxt.cost == 1


async def test_a_rate_is_one_quota_for_a_fan_and_standalone_callers() -> None:
    rate = Rate(200, burst=2)
    fan = Fan(8, limits=[rate])
    times: list[float] = []

    async def stamp(_: int) -> None:
        times.append(anyio.current_time())

    async def alone() -> None:
        for _ in range(20):
            times.append((await rate.acquire()).start)

    async with anyio.create_task_group() as tg:
        tg.start_soon(alone)
        tg.start_soon(fan.map, stamp, range(40))
    assert len(times) == 60
    # Both sides draw from one quota: 60 units at 200/s take 0.3 s, not half that.
    assert most_in_any_window(sorted(times), [1.0] * 60, 0.1) <= 200 * 0.1 + 2


def test_a_rate_follows_the_clock_into_the_next_run() -> None:
    rate = Rate(5, burst=1)

    async def main() -> float:
        ticket = await rate.acquire()
        return ticket.start

    for backend in ("asyncio", *(["trio"] if HAS_TRIO else []), "asyncio"):
        assert isinstance(anyio.run(main, backend=backend), float)


async def test_limits_settle_reports_each_rates_final_units() -> None:
    from anyfan._core._rate import Limits

    limits = Limits(
        [
            Rate(1000, cost=lambda item: 10, actual=lambda item, result: len(result)),
            Rate(1000),
            Rate(1000, cost=lambda item: 8, actual=settle_refusals),
        ]
    )
    ticket = await limits.acquire("item")
    assert limits.settle(ticket, "four") == [4.0, 1.0, 9.0]
    failed = await limits.acquire("item")
    # The first ``actual`` cannot read an exception: that rate keeps its estimate. The
    # third settles a failed call at no cost.
    assert limits.settle(failed, ValueError("no")) == [10.0, 1.0, 0.0]


def settle_refusals(item: object, outcome: object) -> int:
    return 0 if isinstance(outcome, Exception) else 9


# -- the window guarantees, for any demand (trio's MockClock: exact virtual time) --------


@pytest.mark.skipif(not HAS_TRIO, reason="needs trio's MockClock")
@settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    spec=rate_specs,
    shares=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=60),
    workers=st.integers(1, 6),
    window=bound_windows,
)
def test_standalone_admissions_keep_the_window_bounds(
    spec: tuple[float, float], shares: list[float], workers: int, window: float
) -> None:
    import trio
    from trio.testing import MockClock

    limit, per = spec
    rate = Rate(limit, per)
    second = rate.rate
    costs = [round(share * second, 3) for share in shares]  # each at most a second's share
    starts: list[tuple[float, float]] = []

    async def main() -> None:
        queue = list(costs)

        async def worker() -> None:
            while queue:
                cost = queue.pop()
                ticket = await rate.acquire(cost)
                starts.append((ticket.start, cost))

        async with trio.open_nursery() as nursery:
            for _ in range(workers):
                nursery.start_soon(worker)

    trio.run(main, clock=MockClock(autojump_threshold=0))
    starts.sort()
    times = [t for t, _ in starts]
    units = [c for _, c in starts]
    slice_cap = max(math.ceil(second), rate.burst)
    assert most_in_any_window(times, units, 1.0) <= slice_cap + 1e-6
    bound = second * window + max(rate.burst, max(units))
    assert most_in_any_window(times, units, window) < bound + 1e-6
