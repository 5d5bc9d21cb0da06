"""The engine's property tests, played through the blocking facade by a sync caller.

Each example is played twice on every backend: through the facade from this
(sync) thread, and awaited directly under ``anyio.run``. The facade's run must
keep the same invariants and give identical outcomes. For ``map`` on asyncio,
whose scheduling is deterministic, "identical" covers everything, even the
order calls started in and which failures a fail-fast run observed; on trio,
whose scheduler shuffles on purpose, it covers what the scenario determines.
So it does for streams: the order they complete in also depends on how fast
the reading thread drains them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anyfan
from anyfan import FanError, Outcome, blocking
from anyfan.blocking import Loop
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
    from collections.abc import Iterator

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

#: One facade loop per backend, shared by every example of this module.
LOOPS = {name: Loop(backend, options) for name, backend, options in RUN_BACKENDS}  # type: ignore[arg-type]


@pytest.fixture(scope="module", autouse=True)
def _close_loops() -> Iterator[None]:
    yield
    for loop in LOOPS.values():
        loop.close()


def exact(name: str) -> bool:
    """Whether the backend schedules deterministically, so every detail must match."""
    return name.startswith("asyncio")


def direct(main: Any, *args: Any, name: str) -> Any:
    """Run ``main(*args)`` awaited directly, on a fresh loop of backend ``name``."""
    for backend_name, backend, options in RUN_BACKENDS:
        if backend_name == name:
            return anyio.run(main, *args, backend=backend, backend_options=options)
    raise AssertionError(name)  # pragma: no cover


def normal(value: Any) -> Any:
    """A comparable form of a result or an exception."""
    if isinstance(value, Boom):
        return ("boom", value.index)
    if isinstance(value, BaseException):
        return ("error", type(value).__name__)
    return ("ok", value)


# -- map -----------------------------------------------------------------------


def facade_map(
    name: str, scenario: list[Job], concurrency: int, policy: str, sized: bool = False
) -> Any:
    probe = Probe()
    pulls: list[int] = []
    # A sized input tells its length, so the run starts its workers at once; an
    # unsized one does not, so they grow as items come: each start is checked both ways.
    source = CountingInput(
        scenario, on_pull=lambda pulled: pulls.append(pulled - probe.ended), sized=sized
    )
    try:
        result: Any = blocking.map(
            probe, source, concurrency=concurrency, errors=policy, loop=LOOPS[name]
        )
    except FanError as error:
        result = error
    assert max(pulls, default=0) <= concurrency, "items are pulled at most `concurrency` ahead"
    return probe, result


async def direct_map(
    scenario: list[Job], concurrency: int, policy: Any, sized: bool = False
) -> Any:
    probe = Probe()
    source = CountingInput(scenario, sized=sized)
    try:
        result: Any = await anyfan.map(probe, source, concurrency=concurrency, errors=policy)
    except FanError as error:
        result = error
    return probe, result


def summary(
    scenario: list[Job], concurrency: int, policy: str, probe: Probe, result: Any, full: bool
) -> Any:
    """Check a map's invariants; return what must match between two plays."""
    probe.assert_settled()
    assert probe.peak <= concurrency
    failing = [job.index for job in scenario if job.fails]
    expected = [probe.raised.get(job.index, job.value) for job in scenario]
    if policy == "raise" and failing:
        assert isinstance(result, FanError)
        assert result.results is None
        assert dict(result.failures) == probe.raised  # none lost, duplicated or invented
        # Which failures were seen before the stop depends on scheduling.
        return (probe.started, list(result.indices)) if full else "raised"
    assert sorted(probe.started) == [job.index for job in scenario]
    if policy == "collect" and failing:
        assert isinstance(result, FanError)
        assert result.indices == tuple(failing)
        assert result.results == expected
        result = result.results
    assert result == expected
    outcome = [normal(r) for r in result]
    return (probe.started, outcome) if full else outcome


@PROPERTY
@given(scenario=jobs(), concurrency=concurrencies, policy=error_policies, sized=st.booleans())
def test_map_through_the_facade_matches_awaiting_it(
    scenario: list[Job], concurrency: int, policy: str, sized: bool
) -> None:
    for name in LOOPS:
        full = exact(name)
        played = facade_map(name, scenario, concurrency, policy, sized)
        by_facade = summary(scenario, concurrency, policy, *played, full)
        played = direct(direct_map, scenario, concurrency, policy, sized, name=name)
        by_await = summary(scenario, concurrency, policy, *played, full)
        assert by_facade == by_await, name


@settings(PROPERTY, max_examples=20)
@given(scenario=jobs(max_size=12), concurrency=concurrencies, policy=error_policies)
def test_sync_functions_through_the_facade_match_awaiting_them(
    scenario: list[Job], concurrency: int, policy: Any
) -> None:
    for name, loop in LOOPS.items():
        probe = Probe()
        try:
            result: Any = blocking.map(
                probe.sync, scenario, concurrency=concurrency, errors=policy, loop=loop
            )
        except FanError as error:
            result = error
        by_facade = summary(scenario, concurrency, policy, probe, result, full=False)

        async def main() -> Any:
            probe = Probe()
            try:
                result: Any = await anyfan.map(
                    probe.sync, scenario, concurrency=concurrency, errors=policy
                )
            except FanError as error:
                result = error
            return probe, result

        by_await = summary(scenario, concurrency, policy, *direct(main, name=name), full=False)
        assert by_facade == by_await, name


# -- stream --------------------------------------------------------------------


async def direct_stream(
    scenario: list[Job], concurrency: int, ordered: bool
) -> tuple[Probe, list[Outcome[Job, int]]]:
    probe = Probe()
    async with anyfan.stream(probe, scenario, concurrency=concurrency, ordered=ordered) as outs:
        received = [outcome async for outcome in outs]
    return probe, received


def stream_summary(
    scenario: list[Job],
    concurrency: int,
    ordered: bool,
    probe: Probe,
    received: list[Outcome[Job, int]],
) -> Any:
    probe.assert_settled()
    assert probe.peak <= concurrency
    indices = [o.index for o in received]
    assert sorted(indices) == [job.index for job in scenario]  # each item exactly once
    if ordered:
        assert indices == sorted(indices)
    for outcome in received:
        assert outcome.item is scenario[outcome.index]
        assert outcome.error is probe.raised.get(outcome.index)
        assert outcome.value == (None if outcome.item.fails else outcome.item.value)
    if ordered:
        assert received == sorted(received, key=lambda o: o.index)
    return sorted((o.index, normal(o.error or o.value)) for o in received)


@PROPERTY
@given(scenario=jobs(), concurrency=concurrencies, ordered=st.booleans())
def test_stream_through_the_facade_matches_awaiting_it(
    scenario: list[Job], concurrency: int, ordered: bool
) -> None:
    for name, loop in LOOPS.items():
        probe = Probe()
        received = list(
            blocking.stream(probe, scenario, concurrency=concurrency, ordered=ordered, loop=loop)
        )
        by_facade = stream_summary(scenario, concurrency, ordered, probe, received)
        by_await = stream_summary(
            scenario,
            concurrency,
            ordered,
            *direct(direct_stream, scenario, concurrency, ordered, name=name),
        )
        assert by_facade == by_await, name


# -- one Fan, many threads ---------------------------------------------------------


@settings(PROPERTY, max_examples=25)
@given(scenario=jobs(max_size=15), limit=concurrencies)
def test_threads_sharing_a_fan_never_exceed_its_limit(scenario: list[Job], limit: int) -> None:
    for loop in LOOPS.values():
        fan = blocking.Fan(limit, errors="return", loop=loop)
        probe = Probe()
        threads = [
            threading.Thread(target=fan.map, args=(probe, scenario)),
            threading.Thread(
                target=fan.map, args=(probe, scenario), kwargs={"concurrency": max(1, limit - 1)}
            ),
            threading.Thread(target=lambda f=fan, p=probe: list(f.stream(p, scenario))),
            threading.Thread(target=fan.gather, args=[probe(job) for job in scenario]),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert probe.peak <= limit
        assert probe.active == 0
        assert len(probe.started) == 4 * len(scenario)
        assert probe.ended == len(probe.started)
        assert fan.in_flight == 0


# -- leaving early -------------------------------------------------------------------


@PROPERTY
@given(
    scenario=jobs(),
    concurrency=concurrencies,
    read=st.integers(0, 30),
    ordered=st.booleans(),
)
def test_closing_a_stream_early_leaves_nothing_running(
    scenario: list[Job], concurrency: int, read: int, ordered: bool
) -> None:
    for loop in LOOPS.values():
        probe = Probe()
        outcomes = blocking.stream(
            probe, scenario, concurrency=concurrency, ordered=ordered, loop=loop
        )
        taken = [outcome for outcome, _ in zip(outcomes, range(read), strict=False)]
        outcomes.close()
        probe.assert_settled()
        assert probe.peak <= concurrency
        assert len(taken) == min(read, len(scenario))
        assert all(o.error is None or isinstance(o.error, Boom) for o in taken)
