"""`anyfan.first` and `Fan.group`, on every backend."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

import anyfan
from anyfan import Fan, FanError
from strategies import Crowd

pytestmark = pytest.mark.anyio


async def test_first_returns_the_first_success_and_cancels_the_rest() -> None:
    cancelled: list[int] = []
    winner_may_go = anyio.Event()

    async def race(i: int) -> int:
        try:
            if i == 2:
                await winner_may_go.wait()
                return i
            if i == 0:
                winner_may_go.set()
                raise ValueError("zero fails")
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(i)
            raise
        return -1  # pragma: no cover - never reached

    assert await anyfan.first(race, range(5)) == 2
    assert sorted(cancelled) == [1, 3, 4]


async def test_first_raises_every_failure_in_input_order_when_none_succeeds() -> None:
    async def fail(i: int) -> None:
        for _ in range(5 - i):
            await anyio.lowlevel.checkpoint()
        raise ValueError(i)

    with pytest.raises(FanError) as caught:
        await anyfan.first(fail, range(4), concurrency=2)
    assert caught.value.indices == (0, 1, 2, 3)
    assert [e.args[0] for e in caught.value.exceptions] == [0, 1, 2, 3]


async def test_first_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one item"):
        await anyfan.first(anyio.sleep, [])


async def test_first_starts_the_next_item_when_one_fails() -> None:
    seen: list[int] = []

    async def second_wins(i: int) -> int:
        seen.append(i)
        await anyio.lowlevel.checkpoint()
        if i < 1:
            raise ValueError(i)
        return i

    assert await anyfan.first(second_wins, range(10), concurrency=1) == 1
    assert seen == [0, 1]


async def test_group_runs_every_call_under_the_fans_limit() -> None:
    fan = Fan(3)
    crowd = Crowd(3)
    async with fan.group() as g:
        for i in range(20):
            g.start_soon(crowd, i)
    assert g.started == 20
    assert crowd.calls == 20
    assert crowd.peak == 3
    assert fan.stats.succeeded == 20


async def test_group_shares_the_limit_with_plain_calls() -> None:
    fan = Fan(2)
    crowd = Crowd(2)
    async with fan.group() as g:
        g.start_soon(crowd, 1)
        assert await fan.call(crowd, 2) == 2
    assert crowd.peak == 2


async def test_a_failure_cancels_the_group_and_raises_every_failure() -> None:
    fan = Fan(4)
    cancelled: list[int] = []

    async def job(i: int) -> None:
        if i == 1:
            await anyio.lowlevel.checkpoint()
            raise KeyError(i)
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(i)
            raise

    async def run() -> None:
        async with fan.group() as g:
            for i in range(3):
                g.start_soon(job, i)
            await anyio.sleep_forever()  # cancelled by the failure

    with pytest.raises(FanError) as caught:
        await run()
    assert caught.value.indices == (1,)
    assert isinstance(caught.value.exceptions[0], KeyError)
    assert sorted(cancelled) == [0, 2]


async def test_the_bodys_own_error_propagates_unwrapped_and_cancels_the_calls() -> None:
    fan = Fan(2)

    async def run() -> None:
        async with fan.group() as g:
            g.start_soon(anyio.sleep, 1000)
            raise LookupError("body")

    with pytest.raises(LookupError, match="body"):
        await run()
    assert fan.in_flight == 0


async def test_a_closed_group_refuses_new_calls() -> None:
    fan = Fan(2)
    async with fan.group() as g:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        g.start_soon(anyio.sleep, 0)


async def test_group_calls_take_call_options() -> None:
    fan = Fan(2, retry=anyfan.Retry(3, backoff=0.001, max_backoff=0.001, budget=None))
    tries: dict[int, int] = {}

    async def flaky(i: int) -> None:
        tries[i] = tries.get(i, 0) + 1
        raise ConnectionError(i)

    with pytest.raises(FanError):
        async with fan.group() as g:
            g.start_soon(flaky, 7, retry=None)
    assert tries == {7: 1}


def test_group_exported() -> None:
    assert anyfan.Group.__module__ == "anyfan"
    assert isinstance(anyfan.Group, type)
    _: Any = anyfan.first


async def test_first_reads_async_iterables_and_closes_them() -> None:
    closed: list[bool] = []

    async def source() -> Any:
        try:
            for i in range(100):
                yield i
        finally:
            closed.append(True)

    async def over_three(i: int) -> int:
        await anyio.lowlevel.checkpoint()
        if i <= 3:
            raise ValueError(i)
        return i

    class Source:
        def __aiter__(self) -> Any:
            return source()

    assert await anyfan.first(over_three, Source(), concurrency=2) in (4, 5)
    assert closed == [True]


async def test_first_passes_on_a_failing_input() -> None:
    def broken() -> Any:
        yield 1
        raise OSError("input broke")

    async def never(i: int) -> None:
        await anyio.sleep_forever()

    with pytest.raises(OSError, match="input broke"):
        await anyfan.first(never, broken())


async def test_first_with_a_deadline_and_every_call_stuck() -> None:
    async def stuck(i: int) -> None:
        await anyio.sleep_forever()

    with pytest.raises(anyfan.DeadlineExceeded):
        await anyfan.first(stuck, range(3), deadline=0.01)


async def test_first_leaves_a_generator_it_was_given_to_its_owner() -> None:
    closed: list[bool] = []

    async def source() -> Any:
        try:
            for i in range(10):
                yield i
        finally:
            closed.append(True)

    async def echo(i: int) -> int:
        return i

    items = source()
    assert await anyfan.first(echo, items, concurrency=1) == 0
    assert closed == []
    await items.aclose()
    assert closed == [True]


async def test_group_rejects_bad_options_when_the_call_is_started() -> None:
    fan = Fan(2)
    async with fan.group() as g:
        with pytest.raises(ValueError, match="timeout"):
            g.start_soon(anyio.sleep, 0, timeout=-1)
    assert g.started == 0
