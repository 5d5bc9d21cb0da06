"""Property tests of the engine over random scenarios, run on every backend.

Each example is a list of jobs with random delays (in scheduling steps, never
sleeps) and failures. One sync hypothesis test plays the same scenario under
``anyio.run`` on each installed backend, checks the invariants on each, and
compares the outcomes across backends where the policy makes them determined.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anyfan
from anyfan import Fan, FanError, Outcome
from strategies import (
    RUN_BACKENDS,
    Boom,
    CountingInput,
    Job,
    Probe,
    concurrencies,
    error_policies,
    jobs,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def on_every_backend(main: Callable[..., Awaitable[Any]], *args: Any) -> dict[str, Any]:
    """Run ``main(*args)`` once per installed backend; return each result by backend name."""
    return {
        name: anyio.run(main, *args, backend=backend, backend_options=options)
        for name, backend, options in RUN_BACKENDS
    }


def normal(value: Any) -> Any:
    """A backend-neutral, comparable form of a result or an exception."""
    if isinstance(value, Boom):
        return ("boom", value.index)
    if isinstance(value, BaseException):
        return ("error", type(value).__name__)
    return ("ok", value)


# -- map -----------------------------------------------------------------------


async def play_map(scenario: list[Job], concurrency: int, policy: str) -> tuple[Probe, Any]:
    probe = Probe()
    pulls: list[int] = []
    source = CountingInput(scenario, on_pull=lambda pulled: pulls.append(pulled - probe.ended))
    try:
        result: Any = await anyfan.map(probe, source, concurrency=concurrency, errors=policy)  # type: ignore[call-overload]
    except FanError as error:
        result = error
    assert max(pulls, default=0) <= concurrency, "items are pulled at most `concurrency` ahead"
    return probe, result


def check_map(scenario: list[Job], concurrency: int, policy: str, probe: Probe, result: Any) -> Any:
    probe.assert_settled()
    assert probe.peak <= concurrency
    failing = [job.index for job in scenario if job.fails]
    expected = [probe.raised.get(job.index, job.value) for job in scenario]
    if policy == "raise":
        if not failing:
            assert result == expected
            return None
        assert isinstance(result, FanError)
        assert result.results is None
        # Exactly the failures that happened: none lost, none duplicated, none invented.
        assert dict(result.failures) == probe.raised
        assert list(result.indices) == sorted(set(result.indices))
        assert all(isinstance(e, Boom) and e.index == i for i, e in result.failures)
        return None  # which failures were observed depends on scheduling
    # Everything ran: every item yields exactly one outcome.
    assert sorted(probe.started) == [job.index for job in scenario]
    assert set(probe.raised) == set(failing)
    if policy == "return" or not failing:
        assert result == expected
        return [normal(r) for r in result]
    assert isinstance(result, FanError)
    assert result.indices == tuple(failing)
    assert list(result.exceptions) == [probe.raised[i] for i in failing]
    assert result.results == expected
    return [normal(r) for r in result.results]


@PROPERTY
@given(scenario=jobs(), concurrency=concurrencies, policy=error_policies)
def test_map_policies_on_every_backend(scenario: list[Job], concurrency: int, policy: str) -> None:
    played = on_every_backend(play_map, scenario, concurrency, policy)
    seen = {
        name: check_map(scenario, concurrency, policy, probe, result)
        for name, (probe, result) in played.items()
    }
    # The same scenario gives identical outcomes on every backend.
    assert len({repr(outcome) for outcome in seen.values()}) == 1


async def play_sync_map(scenario: list[Job], concurrency: int, policy: str) -> tuple[Probe, Any]:
    probe = Probe()
    try:
        result: Any = await anyfan.map(probe.sync, scenario, concurrency=concurrency, errors=policy)  # type: ignore[call-overload]
    except FanError as error:
        result = error
    return probe, result


@settings(PROPERTY, max_examples=25)
@given(scenario=jobs(max_size=12), concurrency=concurrencies, policy=error_policies)
def test_sync_map_in_threads_on_every_backend(
    scenario: list[Job], concurrency: int, policy: str
) -> None:
    played = on_every_backend(play_sync_map, scenario, concurrency, policy)
    seen = {
        name: check_map(scenario, concurrency, policy, probe, result)
        for name, (probe, result) in played.items()
    }
    assert len({repr(outcome) for outcome in seen.values()}) == 1


# -- stream --------------------------------------------------------------------


async def play_stream(
    scenario: list[Job], concurrency: int, ordered: bool
) -> tuple[Probe, list[Outcome[Job, int]]]:
    probe = Probe()
    received: list[Outcome[Job, int]] = []
    async with anyfan.stream(probe, scenario, concurrency=concurrency, ordered=ordered) as outs:
        async for outcome in outs:
            received.append(outcome)
    return probe, received


@PROPERTY
@given(scenario=jobs(), concurrency=concurrencies, ordered=st.booleans())
def test_stream_yields_each_item_once_on_every_backend(
    scenario: list[Job], concurrency: int, ordered: bool
) -> None:
    seen = []
    for probe, received in on_every_backend(play_stream, scenario, concurrency, ordered).values():
        probe.assert_settled()
        assert probe.peak <= concurrency
        indices = [o.index for o in received]
        assert sorted(indices) == [job.index for job in scenario]
        if ordered:
            assert indices == sorted(indices)
        for outcome in received:
            assert outcome.item is scenario[outcome.index]
            assert outcome.error is probe.raised.get(outcome.index)
            assert outcome.value == (None if outcome.item.fails else outcome.item.value)
        # Completion order may differ between backends; the outcomes may not.
        by_index = sorted(received, key=lambda o: o.index)
        seen.append(repr([(o.index, normal(o.error or o.value)) for o in by_index]))
        if ordered:
            assert received == by_index
    assert len(set(seen)) == 1


# -- a shared Fan ----------------------------------------------------------------


async def play_shared(scenario: list[Job], limit: int) -> Probe:
    fan = Fan(limit, errors="return")
    probe = Probe()

    async def stream() -> None:
        async with fan.stream(probe, scenario) as outcomes:
            async for _ in outcomes:
                pass

    async with anyio.create_task_group() as tg:
        tg.start_soon(fan.map, probe, scenario)
        tg.start_soon(functools.partial(fan.map, probe, scenario, concurrency=max(1, limit - 1)))
        tg.start_soon(stream)
        tg.start_soon(lambda: fan.gather(*(probe(job) for job in scenario)))
    assert fan.in_flight == 0
    return probe


@PROPERTY
@given(scenario=jobs(max_size=15), limit=concurrencies)
def test_a_shared_fan_never_exceeds_its_limit(scenario: list[Job], limit: int) -> None:
    for probe in on_every_backend(play_shared, scenario, limit).values():
        assert probe.peak <= limit
        assert probe.active == 0
        assert len(probe.started) == 4 * len(scenario)
        assert probe.ended == len(probe.started)


# -- cancellation from outside ---------------------------------------------------


async def play_cancel(
    scenario: list[Job], concurrency: int, after: int, how: str
) -> tuple[Probe, bool]:
    probe = Probe()
    with anyio.CancelScope() as scope:
        probe.on_end = lambda: scope.cancel() if probe.ended >= after else None
        if how == "map":
            await anyfan.map(probe, scenario, concurrency=concurrency, errors="return")
        elif how == "gather":
            await anyfan.gather(
                *(probe(job) for job in scenario), concurrency=concurrency, errors="return"
            )
        else:
            async with anyfan.stream(
                probe, scenario, concurrency=concurrency, ordered=how == "ordered"
            ) as outcomes:
                async for outcome in outcomes:
                    assert not isinstance(outcome.error, anyio.get_cancelled_exc_class())
    return probe, scope.cancelled_caught


@PROPERTY
@given(
    scenario=jobs(),
    concurrency=concurrencies,
    after=st.integers(1, 30),
    how=st.sampled_from(["map", "gather", "stream", "ordered"]),
)
def test_cancelling_from_outside_leaves_nothing_running(
    scenario: list[Job], concurrency: int, after: int, how: str
) -> None:
    for probe, cancelled in on_every_backend(
        play_cancel, scenario, concurrency, after, how
    ).values():
        probe.assert_settled()
        assert probe.peak <= concurrency
        if not cancelled:
            assert sorted(probe.started) == [job.index for job in scenario]


@pytest.mark.parametrize("policy", ["raise", "collect", "return"])
def test_an_empty_scenario(policy: str) -> None:
    for probe, result in on_every_backend(play_map, [], 3, policy).values():
        assert result == []
        assert probe.started == []


# -- deadline with sync callables ---------------------------------------------

#: Long enough that an idle call always finishes inside it, even on a loaded machine.
SYNC_DEADLINE = 0.25


def sync_job(slow: bool, index: int) -> int:
    if slow:
        # Each call starts after the deadline's clock started, so sleeping past
        # the deadline's length always outlives it: no timing is hoped for.
        time.sleep(SYNC_DEADLINE * 1.2)
    return index


async def play_sync_deadline(slows: list[bool]) -> Any:
    calls = [functools.partial(sync_job, slow) for slow in slows]
    try:
        return await anyfan.map(
            lambda i: calls[i](i),
            range(len(slows)),
            concurrency=max(1, len(slows)),
            deadline=SYNC_DEADLINE,
        )
    except anyfan.DeadlineExceeded as exc:
        return exc


@settings(PROPERTY, max_examples=6)
@given(slows=st.lists(st.booleans(), max_size=6))
def test_a_deadline_bounds_sync_callables_on_every_backend(slows: list[bool]) -> None:
    # trio used to wait for the threads and return every result, deadline or not.
    for name, result in on_every_backend(play_sync_deadline, slows).items():
        slow = {i for i, s in enumerate(slows) if s}
        if not slow:
            assert result == list(range(len(slows))), name
            continue
        assert isinstance(result, anyfan.DeadlineExceeded), name
        assert not slow & set(result.completed), f"{name}: a result after the deadline was kept"
        assert all(result.completed[i] == i for i in result.completed), name
