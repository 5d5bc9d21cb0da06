"""`Rate` and `Limits` on every backend, on virtual time: bounds, order, refunds, cancellation."""

from __future__ import annotations

import math
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from anyfan._core._gcra import GUARD, default_burst
from anyfan._core._rate import Limits, Rate, Ticket
from anyfan._core._retry import Pause
from strategies import CLOCKED_BACKEND_IDS, HAS_TRIO, clocked_backend
from virtual_time import Virtual, virtual_time


@pytest.fixture(params=CLOCKED_BACKEND_IDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """Every backend; trio on an autojumping MockClock (asyncio gets a FakeClock per test)."""
    return clocked_backend(request.param)


async def settle(rounds: int = 10) -> None:
    """Give every ready task a few turns (a bounded number of checkpoints)."""
    for _ in range(rounds):
        await anyio.lowlevel.checkpoint()


def most_in_any_window(times: list[float], costs: list[float], width: float) -> float:
    best = 0.0
    for i, start in enumerate(times):
        total = sum(c for t, c in zip(times[i:], costs[i:], strict=True) if t < start + width)
        best = max(best, total)
    return best


async def run_workers(
    limits: Limits, clock: Virtual, *, workers: int, seconds: float, item: Any = None
) -> list[Ticket]:
    """``workers`` tasks acquire in a loop for ``seconds`` of virtual time."""
    tickets: list[Ticket] = []
    end = clock.now() + seconds

    async def worker() -> None:
        while True:
            ticket = await limits.acquire(item)
            if ticket.start >= end:
                return
            tickets.append(ticket)

    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker)
    return tickets


# -- Rate: construction ---------------------------------------------------------


def test_rate_defaults_and_repr() -> None:
    rate = Rate(500, per=60)
    assert (rate.limit, rate.per, rate.rate, rate.name) == (500, 60, 500 / 60, "500/60s")
    assert rate.burst == default_burst(500 / 60)
    assert repr(rate) == "Rate(500, per=60)"
    assert rate.cost_of("anything") == 1
    assert rate.actual_of("item", "result") is None


def test_rate_repr_names_its_functions() -> None:
    def estimate(item: str) -> float:
        return len(item)

    rate = Rate(1e5, 60, cost=estimate, burst=50, actual=lambda item, result: 1)
    assert repr(rate) == "Rate(100000, per=60, burst=50, cost=estimate, actual=<lambda>)"
    assert rate.burst == 50
    assert rate.cost_of("abc") == 3
    assert rate.actual_of("abc", None) == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"limit": 0}, ValueError, "limit must be a positive"),
        ({"limit": -1}, ValueError, "limit must be a positive"),
        ({"limit": math.inf}, ValueError, "limit must be a positive, finite"),
        ({"limit": math.nan}, ValueError, "limit"),
        ({"limit": "10"}, TypeError, "limit must be a number"),
        ({"limit": True}, TypeError, "limit must be a number"),
        ({"limit": 10, "per": 0}, ValueError, "per must be a positive"),
        ({"limit": 10, "burst": 0}, ValueError, "burst must be a positive"),
        ({"limit": 10, "cost": 3}, TypeError, "cost must be a function"),
        ({"limit": 10, "actual": "x"}, TypeError, "actual must be a function"),
    ],
)
def test_rate_rejects_bad_arguments(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        Rate(**kwargs)


@pytest.mark.parametrize(("limit", "per"), [(1e300, 1e-300), (1e-300, 1e300)])
def test_a_rate_no_float_can_hold_is_a_value_error(limit: float, per: float) -> None:
    with pytest.raises(ValueError, match=r"^limit / per must be a positive, finite number"):
        Rate(limit, per=per)
    rate = Rate(1)
    with pytest.raises(ValueError, match=r"^limit / per must be"):
        rate.adjust(limit=limit, per=per, now=0.0)
    assert (rate.limit, rate.per) == (1.0, 1.0)  # unchanged after the refusal


@pytest.mark.parametrize("bad", [-1, math.inf, "3", None])
def test_cost_and_actual_must_return_sane_numbers(bad: Any) -> None:
    rate = Rate(10, cost=lambda item: bad, actual=lambda item, result: bad)
    with pytest.raises((TypeError, ValueError), match="cost"):
        rate.cost_of("x")
    with pytest.raises((TypeError, ValueError), match="actual"):
        rate.actual_of("x", None)


def test_adjust_validates_and_outside_a_loop_keeps_queued_work() -> None:
    rate = Rate(10, burst=1)
    rate._state.reserve(1, 0.0)
    due = rate._state.earliest(1, 0.0)
    rate.adjust(limit=20)
    assert (rate.limit, rate.per) == (20, 1)
    assert rate._state.earliest(1, 0.0) == due  # not rescaled: no loop
    with pytest.raises(ValueError, match="limit"):
        rate.adjust(limit=-5)
    rate.adjust(per=2, burst=3, now=0.0)
    assert (rate.per, rate.burst) == (2, 3)


def test_observe_holds_back_when_the_provider_has_less_left() -> None:
    rate = Rate(60, per=60, burst=1)
    rate.observe(0, now=0.0)
    assert rate._state.earliest(1, 0.0) == pytest.approx(rate._state.interval)  # about 1 s


def test_limits_rejects_what_is_not_a_limit() -> None:
    with pytest.raises(TypeError, match=r"anyfan\.Rate"):
        Limits([Rate(1), 10])


# -- Limits: admission ------------------------------------------------------------


@pytest.mark.anyio
async def test_uncontended_acquire_returns_at_once() -> None:
    async with virtual_time() as clock:
        limits = Limits([Rate(10)], **clock.kwargs)
        limits.bind()
        start = clock.now()
        ticket = await limits.acquire("a")
        assert ticket.start == start
        assert ticket.costs == [1.0]
        assert ticket.item == "a"
        assert repr(ticket).startswith("Ticket(costs=[1.0]")
        assert limits.waiting == 0
        assert limits.now() == clock.now()
        assert repr(limits) == "Limits([Rate(10, per=1)])"
        assert limits.rates[0].limit == 10


@pytest.mark.anyio
async def test_no_limits_admits_everything() -> None:
    async with virtual_time() as clock:
        limits = Limits(**clock.kwargs)
        tickets = [await limits.acquire(i) for i in range(100)]
        assert {t.start for t in tickets} == {clock.now()}
        assert limits.stats() == ()


@pytest.mark.anyio
async def test_200_workers_stay_under_50_per_second_and_use_it_all() -> None:
    async with virtual_time() as clock:
        limits = Limits([Rate(50, 1)], **clock.kwargs)
        tickets = await run_workers(limits, clock, workers=200, seconds=10)
        times = [t.start for t in tickets]
        assert times == sorted(times)
        assert most_in_any_window(times, [1.0] * len(times), 1.0) == 50
        assert len(times) >= 0.99 * 50 * 10
        (stats,) = limits.stats()
        assert stats.name == "50/1s"
        assert 45 <= stats.admitted <= 50


@pytest.mark.anyio
async def test_every_rate_must_admit_a_call() -> None:
    async with virtual_time() as clock:
        rpm = Rate(600, per=60)  # 10/s
        tpm = Rate(6_000, per=60, cost=lambda item: item)  # 100 tokens/s
        limits = Limits([rpm, tpm], **clock.kwargs)
        tickets = await run_workers(limits, clock, workers=20, seconds=10, item=25)
        times = [t.start for t in tickets]
        # Tokens bind: 100/s at 25 each is 4 calls a second, not 10.
        assert most_in_any_window(times, [25.0] * len(times), 1.0) <= 100
        assert 4 * 10 * 0.95 <= len(times) <= 4 * 10 + 1
        assert all(t.costs == [1.0, 25.0] for t in tickets)


@pytest.mark.anyio
async def test_waiters_are_served_in_arrival_order_and_big_calls_are_not_starved() -> None:
    async with virtual_time() as clock:
        tokens = Rate(100, cost=lambda item: item)  # slice cap 100
        limits = Limits([tokens], **clock.kwargs)
        order: list[int] = []

        async def call(size: int, tag: int, started: anyio.Event) -> None:
            started.set()
            await limits.acquire(size)
            order.append(tag)

        await limits.acquire(100)  # fill the slice
        async with anyio.create_task_group() as tg:
            sizes = [90, 1, 1, 1, 80, 1]
            for tag, size in enumerate(sizes):
                started = anyio.Event()
                tg.start_soon(call, size, tag, started)
                await started.wait()
        assert order == list(range(len(sizes)))


@pytest.mark.anyio
async def test_a_cancelled_head_never_blocks_those_behind() -> None:
    async with virtual_time() as clock:
        limits = Limits([Rate(1, burst=1)], **clock.kwargs)
        await limits.acquire(None)  # the next is due 1 s from now
        admitted: list[str] = []

        async def call(tag: str, scope: anyio.CancelScope | None = None) -> None:
            with scope or anyio.CancelScope():
                await limits.acquire(tag)
                admitted.append(tag)

        head_scope = anyio.CancelScope()
        middle_scope = anyio.CancelScope()
        t0 = clock.now()
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "head", head_scope)
            await settle()
            tg.start_soon(call, "middle", middle_scope)
            await settle()
            tg.start_soon(call, "tail")
            await settle()
            assert limits.waiting == 3
            middle_scope.cancel()
            await settle()
            assert limits.waiting == 2
            head_scope.cancel()
        # The cancelled calls neither went nor took anything: the tail got the next slot.
        assert admitted == ["tail"]
        assert clock.now() == pytest.approx(t0 + 1.0 + GUARD)
        assert limits.waiting == 0


@pytest.mark.anyio
async def test_a_waiter_let_through_just_before_cancellation_still_goes() -> None:
    async with virtual_time() as clock:
        rate = Rate(10, burst=3)
        limits = Limits([rate], **clock.kwargs)
        for _ in range(3):
            await limits.acquire(None)  # bucket full
        got: list[str] = []
        scope = anyio.CancelScope()

        async def head() -> None:
            await limits.acquire("head")
            got.append("head")
            scope.cancel()  # the one behind was let through too, but has not resumed

        async def behind() -> None:
            with scope:
                await limits.acquire("behind")
                got.append("behind")

        async with anyio.create_task_group() as tg:
            tg.start_soon(head)
            await settle()
            tg.start_soon(behind)
            await settle()
            limits.adjust(rate, limit=1000, burst=10)  # both may go: the head lets both through
        # anyio delivers the wake-up before the cancellation: it goes, and the
        # caller (which will be cancelled at its next checkpoint) settles it.
        assert got == ["head", "behind"]
        assert rate._state.level(clock.now()) == pytest.approx(5)


@pytest.mark.anyio
async def test_raising_a_limit_reschedules_waiters_at_once() -> None:
    async with virtual_time() as clock:
        rate = Rate(1, per=10, burst=1)  # one per 10 s
        limits = Limits([rate], **clock.kwargs)
        await limits.acquire(None)
        t0 = clock.now()
        done = anyio.Event()

        async def waiter() -> None:
            await limits.acquire(None)
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await clock.sleep(1.0)
            assert not done.is_set()
            limits.adjust(0, limit=10)  # ten per 10 s: the 9 s still to drain take 0.9 s
            await done.wait()
        assert clock.now() == pytest.approx(t0 + 1.0 + 9 * rate._state.interval / 10)


@pytest.mark.anyio
async def test_a_change_reaches_a_new_head_before_it_first_sleeps() -> None:
    async with virtual_time() as clock:
        rate = Rate(1, burst=1)
        limits = Limits([rate], **clock.kwargs)
        await limits.acquire(None)
        t0 = clock.now()
        starts: list[float] = []

        async def first() -> None:
            starts.append((await limits.acquire("first")).start)
            # The second is now the head but has not run yet: raise the limit.
            limits.adjust(rate, limit=1000)

        async def second() -> None:
            starts.append((await limits.acquire("second")).start)

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await settle()
            tg.start_soon(second)
        # The first's 1 s of drain now takes 1 ms: the second is due then, not at t0 + 2.
        first_start = t0 + 1.0 + GUARD
        assert starts == pytest.approx([first_start, first_start + rate._state.interval])


@pytest.mark.anyio
async def test_lowering_a_limit_takes_effect_for_waiters() -> None:
    async with virtual_time() as clock:
        rate = Rate(10, burst=1)
        limits = Limits([rate], **clock.kwargs)
        await limits.acquire(None)
        t0 = clock.now()
        limits.adjust(rate, limit=1)
        ticket = await limits.acquire(None)
        assert ticket.start == pytest.approx(t0 + 1.0 + GUARD)  # the slice binds too


@pytest.mark.anyio
async def test_actual_cost_refunds_let_the_next_call_go_sooner() -> None:
    async with virtual_time() as clock:
        tokens = Rate(100, burst=100, cost=lambda item: 40, actual=lambda item, result: 10)
        limits = Limits([tokens], **clock.kwargs)
        first = await limits.acquire("a")
        await limits.acquire("b")  # 80 units: 40 more would overfill the slice
        t0 = clock.now()
        done = anyio.Event()

        async def third() -> None:
            await limits.acquire("c")
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(third)  # due in 1 s, once the slice has room
            await settle()
            assert not done.is_set()
            limits.settle(first, "result")  # 30 unused units come back
            await done.wait()
        assert clock.now() == t0  # it went without waiting


@pytest.mark.anyio
async def test_a_failed_call_keeps_its_estimate() -> None:
    async with virtual_time() as clock:
        # An ``actual`` written for results only raises on the exception: estimate kept.
        tokens = Rate(100, burst=100, cost=lambda item: 50, actual=lambda item, result: len(result))
        limits = Limits([tokens], **clock.kwargs)
        ticket = await limits.acquire("a")
        limits.settle(ticket, RuntimeError("failed"))
        assert tokens._state.level(clock.now()) == pytest.approx(50)
        with pytest.raises(ValueError, match="already settled"):
            limits.settle(ticket, "again")


@pytest.mark.anyio
async def test_settle_without_actual_keeps_the_estimate() -> None:
    async with virtual_time() as clock:
        rate = Rate(10, burst=5)
        limits = Limits([rate], **clock.kwargs)
        ticket = await limits.acquire("a")
        limits.settle(ticket, "ok")
        assert rate._state.level(clock.now()) == pytest.approx(1)


@pytest.mark.anyio
async def test_a_bad_cost_function_fails_the_acquire_without_blocking_others() -> None:
    async with virtual_time() as clock:
        rate = Rate(10, cost=lambda item: -1 if item == "bad" else 1)
        limits = Limits([rate], **clock.kwargs)
        with pytest.raises(ValueError, match="cost"):
            await limits.acquire("bad")
        assert (await limits.acquire("good")).costs == [1.0]


@pytest.mark.anyio
async def test_one_rate_shared_by_two_limits_is_one_quota() -> None:
    async with virtual_time() as clock:
        shared = Rate(10, burst=1)
        a = Limits([shared], **clock.kwargs)
        b = Limits([shared], **clock.kwargs)
        t0 = clock.now()
        await a.acquire(None)
        ticket = await b.acquire(None)
        assert ticket.start == pytest.approx(t0 + shared._state.interval)  # about 0.1 s


@pytest.mark.anyio
async def test_a_pause_gates_admission() -> None:
    async with virtual_time() as clock:
        pause = Pause(ramp=0, **clock.kwargs)
        limits = Limits([Rate(100)], pause=pause, **clock.kwargs)
        limits.bind()
        t0 = clock.now()
        pause.trigger(5.0)
        ticket = await limits.acquire(None)
        assert ticket.start == pytest.approx(t0 + 5.0)


@pytest.mark.anyio
async def test_the_pause_counts_every_start_let_through() -> None:
    async with virtual_time() as clock:
        pause = Pause(ramp=8, waves=8, **clock.kwargs)  # waves of 1 s: 1, 2, 4, ... starts
        rate = Rate(1, burst=1)
        limits = Limits([rate], pause=pause, **clock.kwargs)
        pause.trigger(1.0)
        await clock.sleep(2.0)  # into the second wave: 3 starts in all so far
        await limits.acquire("x")  # the first of them; the rate is now full
        got: list[str] = []
        scope = anyio.CancelScope()

        async def head() -> None:
            await limits.acquire("head")
            got.append("head")
            scope.cancel()  # the one behind was let through too, but has not resumed

        async def behind() -> None:
            with scope:
                await limits.acquire("behind")
                got.append("behind")

        async with anyio.create_task_group() as tg:
            tg.start_soon(head)
            await settle()
            tg.start_soon(behind)
            await settle()
            limits.adjust(rate, limit=1000, burst=10)
        assert got == ["head", "behind"]
        now = clock.now()
        assert pause.schedule.earliest(now) > now  # the wave's three starts are used


@pytest.mark.anyio
async def test_aiolimiter_is_accepted_under_asyncio(anyio_backend: Any) -> None:
    aiolimiter = pytest.importorskip("aiolimiter")
    async with virtual_time() as clock:
        limits = Limits([Rate(10), aiolimiter.AsyncLimiter(10, 1)], **clock.kwargs)
        assert "AsyncLimiter" in repr(limits)
        if anyio_backend[0] == "trio":
            with pytest.raises(RuntimeError, match="only under asyncio"):
                limits.bind()
            with pytest.raises(RuntimeError, match="only under asyncio"):
                await limits.acquire(None)
        else:
            limits.bind()
            ticket = await limits.acquire(None)
            assert ticket.costs == [1.0]


# -- a new event loop takes over ----------------------------------------------------


@pytest.mark.skipif(not HAS_TRIO, reason="needs trio, whose clocks differ per run")
def test_stored_times_follow_the_clock_into_the_next_run() -> None:
    rate = Rate(1, per=100, burst=1)  # the second call waits 100 s
    limits = Limits([rate])
    waits: list[float] = []

    async def run() -> None:
        limits.bind()
        now = anyio.current_time()
        if not waits:
            rate._state.reserve(1, now)
        waits.append(rate._state.earliest(1, now) - now)

    anyio.run(run, backend="trio")
    anyio.run(run, backend="trio")
    assert waits[0] == pytest.approx(100, abs=1)
    assert waits[1] == pytest.approx(100, abs=5)  # not 10^5 s off, as trio's offsets are


@pytest.mark.anyio
@pytest.mark.parametrize("with_pause", [False, True])
async def test_a_waiter_cancelled_natively_after_admission_gives_its_room_back(
    backend_name: str, with_pause: bool
) -> None:
    """asyncio's own ``Task.cancel`` can land between admission and resumption."""
    if backend_name != "asyncio":
        pytest.skip("only asyncio's native cancellation can do this")
    import asyncio

    async with virtual_time() as clock:
        rate = Rate(10, burst=3)
        pause = Pause(**clock.kwargs) if with_pause else None  # never triggered
        limits = Limits([rate], pause=pause, **clock.kwargs)
        for _ in range(3):
            await limits.acquire(None)
        got: list[str] = []
        behind_task: asyncio.Task[None] | None = None

        async def head() -> None:
            await limits.acquire("head")
            got.append("head")
            assert behind_task is not None
            behind_task.cancel()  # let through, not yet resumed

        async def behind() -> None:
            await limits.acquire("behind")
            got.append("behind")

        head_task = asyncio.ensure_future(head())
        await settle()
        behind_task = asyncio.ensure_future(behind())
        await settle()
        limits.adjust(rate, limit=1000, burst=10)
        await head_task
        with pytest.raises(asyncio.CancelledError):
            await behind_task
        assert got == ["head"]
        assert rate._state.level(clock.now()) == pytest.approx(4)  # not 5


@pytest.mark.anyio
async def test_bind_reads_the_time_from_the_loop_itself() -> None:
    limits = Limits([Rate(10)], pause=Pause())
    limits.bind()
    assert limits._line.clock is not anyio.current_time
    assert limits._pause is not None
    assert limits._pause._line.clock == limits._line.clock
    assert limits.now() == pytest.approx(anyio.current_time(), abs=1.0)


def test_native_clocks() -> None:
    import asyncio
    import time

    from anyfan._core._clock import native_clock

    class VirtualLoop(asyncio.SelectorEventLoop):
        def time(self) -> float:
            return 42.0

    standard, virtual = asyncio.new_event_loop(), VirtualLoop()
    try:
        assert native_clock(standard) is time.monotonic  # what asyncio's loop.time() reads
        assert native_clock(virtual)() == 42.0  # a loop with its own idea of time keeps it
    finally:
        standard.close()
        virtual.close()
    uvloop = pytest.importorskip("uvloop")
    fast = uvloop.new_event_loop()
    try:
        assert native_clock(fast) is time.monotonic  # exact, unlike uvloop's cached ms time
    finally:
        fast.close()


def test_a_rate_forgets_the_limits_that_watched_it_once_they_are_gone() -> None:
    import gc

    rate = Rate(10, per=1.0)
    limits = Limits([rate])
    other = Limits([rate])
    assert len(rate._watchers) == 2
    del limits
    gc.collect()
    assert [ref() for ref in rate._watchers] == [other]
    rate._notify()  # pokes only the live one (nobody waits: nothing happens)
