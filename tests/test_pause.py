"""The shared pause: its pure schedule, and the anyio gate on every backend on virtual time."""

from __future__ import annotations

import math
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import pytest
from hypothesis import given
from hypothesis import strategies as st

from anyfan._core._retry import Pause, PauseSchedule
from strategies import CLOCKED_BACKEND_IDS, HAS_TRIO, clocked_backend
from virtual_time import virtual_time


@pytest.fixture(params=CLOCKED_BACKEND_IDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return clocked_backend(request.param)


# -- the pure schedule -------------------------------------------------------------


def starts_per_wave(schedule: PauseSchedule, start: float, step: float, waves: int) -> list[int]:
    """Take as many starts as allowed at each instant; count them per wave."""
    counts = [0] * (waves + 1)
    now = start
    while now < start + step * waves:
        at = schedule.earliest(now)
        if at > now:
            now = at
            continue
        schedule.take(now)
        counts[min(int((now - start) // step), waves)] += 1
        if sum(counts) > 10_000:
            break
    return counts


def test_nothing_is_held_before_any_pause() -> None:
    schedule = PauseSchedule()
    assert not schedule.active
    assert schedule.earliest(5.0) == 5.0
    assert schedule.until == -math.inf
    assert schedule.paused_time(5.0) == 0


def test_a_pause_holds_every_start_until_it_ends() -> None:
    schedule = PauseSchedule(ramp=0)
    assert schedule.trigger(10.0, now=100.0)
    assert schedule.active
    assert schedule.earliest(100.0) == 110.0
    assert schedule.earliest(109.999) == 110.0
    assert schedule.earliest(110.0) == 110.0  # ramp 0: full speed at once
    assert not schedule.active


def test_starts_ramp_back_up_in_doubling_waves() -> None:
    schedule = PauseSchedule(ramp=8.0, waves=8)
    schedule.trigger(2.0, now=0.0)
    assert starts_per_wave(schedule, 2.0, 1.0, 8)[:8] == [1, 2, 4, 8, 16, 32, 64, 128]
    assert schedule.earliest(10.0) == 10.0
    assert not schedule.active  # the ramp is over


def test_a_longer_pause_replaces_the_current_one_a_shorter_one_does_not() -> None:
    schedule = PauseSchedule(ramp=0)
    schedule.trigger(10.0, now=0.0)
    assert not schedule.trigger(5.0, now=1.0)  # ends at 6: within the current pause
    assert schedule.until == 10.0
    assert schedule.trigger(10.0, now=5.0)  # ends at 15
    assert schedule.until == 15.0
    assert schedule.paused_time(15.0) == 15.0  # overlapping pauses count once
    assert schedule.paused_time(12.0) == 12.0  # only what has elapsed


def test_a_new_pause_during_a_ramp_restarts_it() -> None:
    schedule = PauseSchedule(ramp=4.0, waves=4)
    schedule.trigger(1.0, now=0.0)
    for _ in range(3):
        schedule.take(2.5)  # second wave
    schedule.trigger(1.0, now=2.5)
    assert schedule.earliest(3.0) == 3.5
    assert schedule.earliest(3.5) == 3.5  # the first wave of the new ramp
    schedule.take(3.5)
    assert schedule.earliest(3.5) == 4.5


def test_untake_gives_a_start_back() -> None:
    schedule = PauseSchedule(ramp=4.0, waves=4)
    schedule.trigger(1.0, now=0.0)
    schedule.take(1.0)
    assert schedule.earliest(1.0) == 2.0
    schedule.untake()
    assert schedule.earliest(1.0) == 1.0
    schedule.untake()  # nothing to give back: harmless
    assert schedule.earliest(1.0) == 1.0


def test_starts_during_the_pause_itself_are_not_counted() -> None:
    schedule = PauseSchedule(ramp=4.0, waves=4)
    schedule.take(0.0)  # no pause yet
    schedule.trigger(1.0, now=0.0)
    schedule.take(0.5)  # forced through while paused (not counted against the ramp)
    assert schedule.earliest(1.0) == 1.0


def test_shift_moves_the_pause() -> None:
    schedule = PauseSchedule(ramp=0)
    schedule.trigger(5.0, now=0.0)
    schedule.shift(100.0)
    assert schedule.earliest(100.0) == 105.0


@given(
    triggers=st.lists(st.tuples(st.floats(0, 100), st.floats(0, 30)), min_size=1, max_size=20),
)
def test_no_start_goes_during_any_pause(triggers: list[tuple[float, float]]) -> None:
    schedule = PauseSchedule(ramp=2.0, waves=4)
    for at, delay in sorted(triggers):
        schedule.trigger(delay, now=at)
        start = schedule.earliest(at)
        assert start >= at + delay
        assert start >= schedule.until
        assert (
            schedule.paused_time(schedule.until) <= schedule.until - sorted(triggers)[0][0] + 1e-9
        )


# -- the anyio gate -----------------------------------------------------------------


def test_pause_validation_and_repr() -> None:
    assert repr(Pause()) == "Pause(ramp=5, waves=8)"
    with pytest.raises(ValueError, match="waves must be at least 1"):
        Pause(waves=0)
    with pytest.raises(TypeError, match="waves must be an int"):
        Pause(waves=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ramp must be a non-negative, finite number"):
        Pause(ramp=-1)


@pytest.mark.anyio
async def test_wait_returns_at_once_when_nothing_is_paused() -> None:
    async with virtual_time() as clock:
        pause = Pause(**clock.kwargs)
        pause.bind()
        t0 = clock.now()
        for _ in range(100):
            await pause.wait()
        assert clock.now() == t0
        assert pause.paused_time() == 0
        assert pause.waiting == 0


@pytest.mark.anyio
async def test_a_pause_is_shared_by_every_worker_and_then_ramps() -> None:
    async with virtual_time() as clock:
        pause = Pause(ramp=4.0, waves=4, **clock.kwargs)
        starts: list[float] = []
        t0 = clock.now()

        async def worker() -> None:
            for _ in range(5):
                await pause.wait()
                starts.append(clock.now() - t0)
                await clock.sleep(0.01)

        pause.trigger(3.0)
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(worker)
        assert len(starts) == 100
        assert min(starts) == pytest.approx(3.0)
        per_wave = [sum(1 for s in starts if 3 + k <= s < 4 + k) for k in range(4)]
        assert per_wave == [1, 2, 4, 8]  # then everything else, after the ramp
        assert pause.paused_time() == pytest.approx(3.0)


@pytest.mark.anyio
async def test_a_cancelled_waiter_does_not_hold_up_the_others() -> None:
    async with virtual_time() as clock:
        pause = Pause(ramp=0, **clock.kwargs)
        pause.trigger(2.0)
        t0 = clock.now()
        went: list[str] = []
        scope = anyio.CancelScope()

        async def waiter(tag: str, cancel_scope: anyio.CancelScope) -> None:
            with cancel_scope:
                await pause.wait()
                went.append(tag)

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter, "first", scope)
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
            tg.start_soon(waiter, "second", anyio.CancelScope())
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
            assert pause.waiting == 2
            scope.cancel()
        assert went == ["second"]
        assert clock.now() == pytest.approx(t0 + 2.0)


@pytest.mark.anyio
async def test_a_pause_is_shared_across_facade_threads() -> None:
    """Threads reach the Fan's loop through anyio's portal and wait on the same pause."""
    async with virtual_time() as clock:
        pause = Pause(ramp=0, **clock.kwargs)
        t0 = clock.now()
        pause.trigger(30.0)
        seen: list[float] = []

        def in_thread() -> None:
            anyio.from_thread.run(pause.wait)
            seen.append(anyio.from_thread.run_sync(clock.now))

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(anyio.to_thread.run_sync, in_thread)
        assert len(seen) == 4
        assert all(t >= t0 + 30.0 for t in seen)


@pytest.mark.skipif(not HAS_TRIO, reason="needs trio, whose clocks differ per run")
def test_a_pause_follows_the_clock_into_the_next_run() -> None:
    pause = Pause(ramp=0)
    left: list[float] = []

    async def run() -> None:
        pause.bind()
        now = anyio.current_time()
        if not left:
            pause.trigger(60.0)
        left.append(pause.schedule.earliest(now) - now)

    anyio.run(run, backend="trio")
    anyio.run(run, backend="trio")
    assert left[0] == pytest.approx(60.0)
    assert left[1] == pytest.approx(60.0, abs=5)
