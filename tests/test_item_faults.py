"""Faults that must fail only their own item, or be refused before anything starts."""

from __future__ import annotations

import pickle
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anyfan
from anyfan import FanError

pytestmark = pytest.mark.anyio

#: Only a guard, so that a stall fails the test instead of hanging the suite.
GUARD = 20


async def echo(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return x


def cost_failing_on(bad: set[int]) -> Any:
    def cost(item: int) -> float:
        if item in bad:
            raise LookupError(f"no estimate for {item}")
        return 1.0

    return cost


@pytest.mark.parametrize("errors", ["collect", "return"])
async def test_a_broken_cost_function_fails_only_its_item(errors: str) -> None:
    fan = anyfan.Fan(2, limits=[anyfan.Rate(100_000, cost=cost_failing_on({2, 5}))])
    if errors == "return":
        results = await fan.map(echo, range(7), errors="return")
    else:
        with pytest.raises(FanError) as caught:
            await fan.map(echo, range(7), errors="collect")
        assert caught.value.indices == (2, 5)
        assert all(isinstance(e, LookupError) for e in caught.value.exceptions)
        results = caught.value.results or []
    assert [r if not isinstance(r, LookupError) else "x" for r in results] == [
        0, 1, "x", 3, 4, "x", 6,
    ]  # fmt: skip
    stats = fan.stats
    assert (stats.started, stats.succeeded, stats.failed) == (5, 5, 2)


async def test_a_broken_cost_function_is_not_retried_and_is_reported_with_its_index() -> None:
    fan = anyfan.Fan(
        1,
        limits=[anyfan.Rate(100_000, cost=cost_failing_on({1}))],
        retry=anyfan.Retry(3, retry_on=(LookupError,), backoff=0.001, budget=None),
    )
    async with fan.stream(echo, range(3), ordered=True) as results:
        outcomes = [o async for o in results]
    assert [(o.index, o.ok) for o in outcomes] == [(0, True), (1, False), (2, True)]
    assert isinstance(outcomes[1].error, LookupError)
    assert fan.stats.retried == 0


@settings(max_examples=15, deadline=None)
@given(st.sets(st.integers(0, 9)))
def test_cost_failures_never_abort_the_map(bad: set[int]) -> None:
    async def main() -> list[Any]:
        fan = anyfan.Fan(3, limits=[anyfan.Rate(100_000, cost=cost_failing_on(bad))])
        return await fan.map(echo, range(10), errors="return")

    results = anyio.run(main)
    assert [i for i, r in enumerate(results) if isinstance(r, LookupError)] == sorted(bad)
    assert [r for r in results if not isinstance(r, LookupError)] == sorted(set(range(10)) - bad)


async def test_a_non_callable_fn_is_refused_when_the_call_is_made() -> None:
    calls: list[int] = []

    def items() -> Any:
        calls.append(1)
        yield 1

    fan = anyfan.Fan(2)
    with pytest.raises(TypeError, match="fn must be callable, got int"):
        await fan.map(3, items())  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="fn must be callable"):
        await anyfan.map(3, items())  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="fn must be callable"):
        fan.stream(3, items())  # type: ignore[call-overload]  # before entering
    with pytest.raises(TypeError, match="fn must be callable"):
        anyfan.stream(3, items())  # type: ignore[call-overload]
    assert calls == [], "no item was pulled"


def test_a_non_callable_fn_is_refused_by_the_blocking_api() -> None:
    with pytest.raises(TypeError, match="fn must be callable"):
        anyfan.blocking.map("nope", [1, 2])  # type: ignore[call-overload]
    with anyfan.blocking.Fan(2) as fan:
        with pytest.raises(TypeError, match="fn must be callable"):
            fan.stream(None, [1])  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="fn must be callable"):
            fan.map(None, [1])  # type: ignore[call-overload]
    with anyfan.Executor(2) as executor:
        with pytest.raises(TypeError, match="fn must be callable"):
            executor.submit(5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="fn must be callable"):
            executor.map(5, [1])  # type: ignore[call-overload]


def test_executor_accepts_max_workers() -> None:
    with anyfan.Executor(max_workers=3) as executor:
        assert "concurrency=3" in repr(executor)
        assert list(executor.map(abs, [-1, -2])) == [1, 2]
    with pytest.raises(TypeError, match="not both"):
        anyfan.Executor(2, max_workers=3)


# -- a cost the limit could never admit ------------------------------------------


async def test_a_call_costing_more_than_a_period_admits_fails_at_once_and_charges_nothing() -> None:
    # A max_tokens of 10**12 under 100,000 tokens a minute used to stall the job
    # for 10**12 / (100000 / 60) seconds before the next call.
    rate = anyfan.Rate(100_000, per=60, cost=lambda item: item)
    fan = anyfan.Fan(1, limits=[rate])
    # One at a time, the huge call first: had it been charged, the calls after it
    # would wait for days and the guard would fail the test.
    with anyio.fail_after(GUARD):
        results = await fan.map(echo, [10**12, 10, 20], errors="return")
    too_large = results[0]
    assert isinstance(too_large, anyfan.CostTooLarge)
    assert isinstance(too_large, ValueError)
    assert (too_large.cost, too_large.limit, too_large.most) == (1e12, "100000/60s", 100_000)
    assert "1e+12" in str(too_large)
    assert "100000/60s" in str(too_large)
    assert results[1:] == [10, 20]
    stats = fan.stats
    assert (stats.started, stats.failed) == (2, 1)


def test_cost_too_large_round_trips_through_pickle() -> None:
    error = anyfan.CostTooLarge(5e6, "1000/60s", 1000)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.cost, copy.limit, copy.most, str(copy)) == (
        anyfan.CostTooLarge, 5e6, "1000/60s", 1000, str(error),
    )  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(
    limit=st.integers(1, 1_000), burst=st.none() | st.integers(1, 2_000), over=st.integers(1, 10**9)
)
def test_costs_above_the_limit_and_burst_are_refused_and_the_rest_admitted(
    limit: int, burst: int | None, over: int
) -> None:
    rate = anyfan.Rate(limit, per=1e-3, burst=burst, cost=lambda item: item)
    most = max(limit, rate.burst)

    async def main() -> list[Any]:
        fan = anyfan.Fan(2, limits=[rate])
        with anyio.fail_after(GUARD):
            return await fan.map(echo, [most, most + over], errors="return")

    fits, refused = anyio.run(main)
    assert fits == most
    assert isinstance(refused, anyfan.CostTooLarge)
    assert refused.most == most


class Rejected(Exception):
    """A provider's refusal that did no work (think HTTP 400)."""


async def test_actual_sees_the_error_and_can_settle_a_refused_call_at_no_cost() -> None:
    seen: list[object] = []

    def actual(item: int, outcome: object) -> float:
        seen.append(outcome)
        if isinstance(outcome, Rejected):
            return 0  # the provider did no work: give the whole estimate back
        if isinstance(outcome, BaseException):
            raise outcome  # keep the estimate
        return float(item)

    async def call(item: int) -> int:
        await anyio.lowlevel.checkpoint()
        if item == 1:
            raise Rejected(item)
        if item == 2:
            raise ValueError(item)
        return item

    # A bucket of 1,000 units a minute; each call estimated at 600. The refused
    # call must give its 600 back, or the third call would wait half a minute.
    rate = anyfan.Rate(1_000, per=60, cost=lambda item: 600, actual=actual)
    fan = anyfan.Fan(1, limits=[rate])
    with anyio.fail_after(GUARD):
        results = await fan.map(call, [1, 0], errors="return")
    assert isinstance(results[0], Rejected)
    assert results[1] == 0
    assert [type(o) for o in seen] == [Rejected, int]
