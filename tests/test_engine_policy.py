"""The engine's guarded path: rate limits, retries and the shared pause per attempt."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

import anyfan
from anyfan._core._channel import Channel
from anyfan._core._policy import Policy

pytestmark = pytest.mark.anyio

FAST = {"backoff": 0.001, "max_backoff": 0.001, "budget": None}


async def fail_odd(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    if x % 2:
        raise ValueError(x)
    return x


async def test_limits_without_retry_fail_once_and_count() -> None:
    fan = anyfan.Fan(4, limits=[anyfan.Rate(100_000)])
    results = await fan.map(fail_odd, range(6), errors="return")
    assert [isinstance(r, ValueError) for r in results] == [False, True] * 3
    stats = fan.stats
    assert (stats.started, stats.succeeded, stats.failed, stats.retried) == (6, 3, 3, 0)
    assert stats.limits[0].name == "100000/1s"


async def test_a_broken_actual_function_fails_its_item() -> None:
    def actual(item: int, result: int) -> float:
        raise RuntimeError("no usage here")

    fan = anyfan.Fan(2, limits=[anyfan.Rate(100_000, actual=actual)])
    results = await fan.map(fail_odd, [0, 1], errors="return")
    assert isinstance(results[0], RuntimeError)
    assert isinstance(results[1], ValueError)  # the call's own error wins


async def test_retry_without_limits_waits_on_the_pause_and_heals() -> None:
    tries: dict[int, int] = {}

    async def flaky(x: int) -> int:
        tries[x] = tries.get(x, 0) + 1
        if tries[x] < 3:
            raise ConnectionError(x)
        return x

    fan = anyfan.Fan(3, retry=anyfan.Retry(3, **FAST))
    assert await fan.map(flaky, range(4)) == [0, 1, 2, 3]
    assert fan.stats.retried == 8
    assert fan.limits == ()
    assert fan.retry is not None


@pytest.mark.parametrize("guarded", [False, True])
async def test_a_worker_under_limits_or_retries_yields_after_every_call(guarded: bool) -> None:
    turns = 0
    seen: list[int] = []

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await anyio.lowlevel.checkpoint()

    async def instant(x: int) -> int:
        seen.append(turns)  # how often the other task ran before this call
        return x

    options: dict[str, Any] = {"retry": anyfan.Retry(2, **FAST)} if guarded else {}
    fan = anyfan.Fan(1, **options)
    async with anyio.create_task_group() as tg:
        tg.start_soon(other_task)
        await anyio.lowlevel.checkpoint()
        assert await fan.map(instant, range(6)) == [0, 1, 2, 3, 4, 5]
        tg.cancel_scope.cancel()
    if guarded:
        # Each next call waited for a later turn, in which the other task ran once
        # too (before or after it: trio shuffles a turn's order, hence one slack).
        assert seen[-1] - seen[0] >= len(seen) - 2, seen
    else:
        assert seen[-1] == seen[0], seen  # unguarded calls run back to back


async def test_retries_give_up_after_their_attempts_and_report_them() -> None:
    async def never(x: int) -> int:
        raise ConnectionError(x)

    async with anyfan.stream(never, range(3), retry=anyfan.Retry(2, **FAST)) as outcomes:
        seen = [o async for o in outcomes]
    assert sorted(o.attempts for o in seen) == [2, 2, 2]
    assert all(isinstance(o.error, ConnectionError) for o in seen)


async def test_per_call_limits_and_retry_add_to_the_fans() -> None:
    shared = anyfan.Rate(100_000)
    fan = anyfan.Fan(4, limits=[shared])
    extra = anyfan.Rate(50_000)
    tries: dict[int, int] = {}

    async def flaky(x: int) -> int:
        tries[x] = tries.get(x, 0) + 1
        if tries[x] == 1:
            raise ConnectionError(x)
        return x

    assert await fan.map(flaky, range(3), limits=[extra], retry=anyfan.Retry(2, **FAST)) == [
        0,
        1,
        2,
    ]
    assert fan.retry is None  # the Fan's own policy is unchanged
    assert fan.limits == (shared,)
    assert "limits=" in repr(fan)


async def test_stream_rejects_a_bad_progress_option_at_once() -> None:
    with pytest.raises(TypeError, match="progress"):
        anyfan.stream(fail_odd, [1], progress=3)  # type: ignore[call-overload]


def test_policy_rejects_what_is_not_a_retry() -> None:
    with pytest.raises(TypeError, match=r"retry must be an anyfan\.Retry"):
        Policy(retry="twice")  # type: ignore[arg-type]
    assert not Policy().active


async def test_channel_wakes_writers_when_the_reader_takes_the_buffer() -> None:
    channel: Channel[int] = Channel(4)
    for i in range(4):
        await channel.put(i)
    woken = anyio.Event()

    async def writer() -> None:
        await channel.put(4)
        woken.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        await anyio.wait_all_tasks_blocked()
        assert not woken.is_set()  # full: the writer waits
        assert await anext(channel) == 0  # the reader takes all four: room for four more
        await woken.wait()
    channel.close()
    assert [await anext(channel) for _ in range(4)] == [1, 2, 3, 4]
    with pytest.raises(StopAsyncIteration):
        await anext(channel)


async def test_channel_holds_at_most_twice_its_capacity() -> None:
    """A full buffer plus the batch the reader is working through."""
    channel: Channel[int] = Channel(2)
    assert channel.try_put(0)
    assert channel.try_put(1)
    assert not channel.try_put(2)
    assert await anext(channel) == 0  # the batch [0, 1] is taken; one of it left
    assert channel.try_put(2)
    assert channel.try_put(3)
    assert not channel.try_put(4)  # held: 1 in the batch, 2 in the buffer
    channel.close()
    assert [o async for o in channel] == [1, 2, 3]


async def test_channel_reader_waits_for_a_writer() -> None:
    channel: Channel[Any] = Channel(2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(channel.put, "x")
        assert await anext(channel) == "x"


@pytest.mark.parametrize("guarded", [False, True], ids=["fast path", "policy path"])
async def test_stats_count_every_attempt_once_in_real_runs(guarded: bool) -> None:
    """started == succeeded + failed + retried + cancelled + in_flight, on both paths."""
    tries: dict[int, int] = {}

    async def flaky(x: int) -> int:
        tries[x] = tries.get(x, 0) + 1
        await anyio.lowlevel.checkpoint()
        if x % 3 == 0 and tries[x] < 2:
            raise ConnectionError(x)  # retried once, then succeeds
        if x % 3 == 1:
            raise ValueError(x)  # never retried
        return x

    retry = anyfan.Retry(3, **FAST) if guarded else None
    fan = anyfan.Fan(4, retry=retry)
    await fan.map(flaky, range(30), errors="return")
    stats = fan.stats
    assert stats.in_flight == 0
    assert stats.started == sum(tries.values())
    assert stats.started == stats.succeeded + stats.failed + stats.retried + stats.cancelled
    assert stats.failed == 10 + (0 if guarded else 10)
    assert stats.retried == (10 if guarded else 0)


async def test_channel_reader_that_never_waits_yields_once_per_batch() -> None:
    channel: Channel[int] = Channel(4)
    for i in range(4):
        assert channel.try_put(i)
    with anyio.CancelScope() as scope:
        scope.cancel()  # so the first checkpoint reached raises
        await anext(channel)
    # Taking a batch that was waiting is a checkpoint; the batch is kept, not lost.
    assert scope.cancelled_caught
    assert channel.try_put(4)  # the buffer was emptied into the batch
    with anyio.CancelScope() as scope:
        scope.cancel()
        # Reading on through the batch is not a checkpoint.
        taken = [await anext(channel) for _ in range(4)]
    assert taken == [0, 1, 2, 3]
    assert not scope.cancelled_caught
    with anyio.CancelScope() as scope:
        scope.cancel()
        await anext(channel)  # the next batch, [4]: a checkpoint again
    assert scope.cancelled_caught
    assert await anext(channel) == 4


async def test_channel_reader_finding_nothing_yields_before_it_waits() -> None:
    channel: Channel[int] = Channel(2)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await anext(channel)
    # Cancelled at that checkpoint, before it made an event to wait on.
    assert scope.cancelled_caught
    assert channel.reader_waiting is None
    channel.close()
    with anyio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(StopAsyncIteration):
            await anext(channel)  # closed and drained: it ends without yielding
    assert not scope.cancelled_caught


async def test_channel_reader_cancelled_while_waiting_loses_nothing() -> None:
    channel: Channel[int] = Channel(2)
    with anyio.move_on_after(0) as scope:
        await anext(channel)  # empty: waits, and is cancelled there
    assert scope.cancelled_caught
    async with anyio.create_task_group() as tg:
        tg.start_soon(channel.put, 7)
        assert await anext(channel) == 7  # a fresh wait, woken by the writer
    channel.close()
    with pytest.raises(StopAsyncIteration):
        await anext(channel)


@pytest.mark.parametrize("ordered", [False, True], ids=["unordered", "ordered"])
async def test_stream_outcomes_can_be_taken_one_by_one(ordered: bool) -> None:
    async def double(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return 2 * x

    async with anyfan.stream(double, [1, 2, 3], ordered=ordered) as outcomes:
        first = await anext(outcomes)  # not through `async for`: Outcomes' own __anext__
        rest = [o async for o in outcomes]
    assert sorted(o.value for o in [first, *rest]) == [2, 4, 6]
    if ordered:
        assert [o.index for o in [first, *rest]] == [0, 1, 2]
    with pytest.raises(StopAsyncIteration):
        await anext(outcomes)


def test_channel_is_its_own_async_iterator() -> None:
    channel: Channel[int] = Channel(1)
    assert aiter(channel) is channel
