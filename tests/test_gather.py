"""`anyfan.gather`: asyncio.gather made structured and limited, on any backend."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

import anyfan
from anyfan import FanError
from strategies import Boom, Crowd, Job, Probe

if TYPE_CHECKING:
    from collections.abc import Coroutine, Generator

pytestmark = pytest.mark.anyio


class _Awaitable:
    """An awaitable that is not a coroutine."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, int]:
        return self._run().__await__()

    async def _run(self) -> int:
        await anyio.lowlevel.checkpoint()
        return self.value


async def test_results_in_argument_order() -> None:
    probe = Probe()
    jobs = [Job(i, steps=(7 - i) % 4) for i in range(8)]
    assert await anyfan.gather(*(probe(job) for job in jobs)) == [job.value for job in jobs]
    probe.assert_settled()


async def test_no_awaitables() -> None:
    assert await anyfan.gather() == []


async def test_any_awaitable() -> None:
    probe = Probe()
    assert await anyfan.gather(_Awaitable(1), probe(Job(2)), _Awaitable(3)) == [1, 20, 3]


async def test_default_runs_everything_at_once() -> None:
    crowd = Crowd(20)
    with anyio.fail_after(30):  # a hang guard only
        assert await anyfan.gather(*(crowd(i) for i in range(20))) == list(range(20))
    assert crowd.peak == 20


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_concurrency_is_limited_and_reached(concurrency: int) -> None:
    crowd = Crowd(concurrency)
    with anyio.fail_after(30):  # a hang guard only
        assert await anyfan.gather(*(crowd(i) for i in range(20)), concurrency=concurrency) == (
            list(range(20))
        )
    assert crowd.peak == concurrency


async def test_raise_policy_cancels_the_rest_and_closes_unstarted_coroutines() -> None:
    # filterwarnings=error turns any "coroutine ... was never awaited" into a failure.
    probe = Probe()
    coros: list[Coroutine[Any, Any, int]] = [probe(Job(0, steps=1, fails=True))]
    coros += [probe(Job(i, steps=1000)) for i in range(1, 10)]
    with pytest.raises(FanError) as info:
        await anyfan.gather(*coros, concurrency=3)
    assert info.value.failures == [(0, probe.raised[0])]
    assert all(inspect.getcoroutinestate(c) == inspect.CORO_CLOSED for c in coros)
    assert len(probe.started) <= 3
    probe.assert_settled()


async def test_collect_and_return_policies() -> None:
    probe = Probe()
    with pytest.raises(FanError) as info:
        await anyfan.gather(probe(Job(0)), probe(Job(1, fails=True)), errors="collect")
    assert info.value.results == [0, probe.raised[1]]
    probe = Probe()
    results = await anyfan.gather(
        probe(Job(0, fails=True)), probe(Job(1, steps=2)), errors="return", concurrency=1
    )
    assert results == [probe.raised[0], 10]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"concurrency": 0}, "concurrency must be at least 1"), ({"errors": "no"}, "errors must be")],
)
async def test_bad_options_raise_and_close_the_coroutines(
    kwargs: dict[str, Any], message: str
) -> None:
    probe = Probe()
    coros = [probe(Job(0)), probe(Job(1))]
    with pytest.raises(ValueError, match=message):
        await anyfan.gather(*coros, **kwargs)
    assert all(inspect.getcoroutinestate(c) == inspect.CORO_CLOSED for c in coros)
    coros = [probe(Job(0)), probe(Job(1))]
    with pytest.raises(ValueError, match=message):
        await anyfan.Fan().gather(*coros, **kwargs)
    assert all(inspect.getcoroutinestate(c) == inspect.CORO_CLOSED for c in coros)
    assert probe.started == []


async def test_fan_gather_is_capped_by_the_fans_limit() -> None:
    fan = anyfan.Fan(2)
    crowd = Crowd(2)
    with anyio.fail_after(30):  # a hang guard only
        await fan.gather(*(crowd(i) for i in range(10)), concurrency=50)
    assert crowd.peak == 2


async def test_except_star_on_gather() -> None:
    probe = Probe()
    caught: list[BaseExceptionGroup[Exception]] = []
    try:
        await anyfan.gather(probe(Job(0)), probe(Job(1, fails=True)), errors="collect")
    except* Boom as group:
        caught.append(group)
    assert [type(g) for g in caught] == [FanError]
    assert [g.indices for g in caught] == [(1,)]  # type: ignore[attr-defined]
