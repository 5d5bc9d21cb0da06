"""Faults that must fail only their own item, or be refused before anything starts."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anyfan
from anyfan import FanError

pytestmark = pytest.mark.anyio


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
