"""The blocking stream: a plain iterator of outcomes, cancelled when left early."""

from __future__ import annotations

import gc
import threading
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from anyfan import DeadlineExceeded, Outcome
from anyfan.blocking import Fan, Loop, Outcomes

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator


async def double(x: int) -> int:
    await anyio.sleep(0)
    return 2 * x


@pytest.fixture
def fan(facade_loop: Loop) -> Iterator[Fan]:
    with Fan(3, loop=facade_loop) as fan:
        yield fan


class Stuck:
    """Calls for item 0 return; every other call blocks until cancelled, which is recorded.

    With concurrency 3, items 1-3 then hold every slot, so exactly they get
    cancelled. ``when_full`` (if set) is awaited once all three are blocked.
    """

    def __init__(self, when_full: Callable[[], Awaitable[None]] | None = None) -> None:
        self.blocked: list[int] = []
        self.all_blocked = threading.Event()
        self.cancelled: list[int] = []
        self.all_cancelled = threading.Event()
        self.when_full = when_full

    async def __call__(self, x: int) -> int:
        if x == 0:
            return 0
        self.blocked.append(x)
        if len(self.blocked) == 3:
            self.all_blocked.set()
            if self.when_full is not None:
                await self.when_full()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(x)
            if len(self.cancelled) == 3:
                self.all_cancelled.set()
            raise
        raise AssertionError("unreachable")


def test_unordered_yields_each_index_once_and_ordered_keeps_input_order(fan: Fan) -> None:
    unordered = list(fan.stream(double, range(20)))
    assert sorted(o.index for o in unordered) == list(range(20))
    assert all(o.value == 2 * o.item and o.ok and o.attempts == 1 for o in unordered)
    ordered = list(fan.stream(double, range(20), ordered=True))
    assert [o.index for o in ordered] == list(range(20))
    assert [o.value for o in fan.stream(lambda x: -x, range(3), ordered=True)] == [0, -1, -2]


def test_failures_arrive_as_outcomes_without_stopping_the_stream(fan: Fan) -> None:
    async def fail_on_two(x: int) -> int:
        if x == 2:
            raise ValueError("two")
        return x

    outcomes = {o.index: o for o in fan.stream(fail_on_two, range(5))}
    assert len(outcomes) == 5
    assert isinstance(outcomes[2].error, ValueError)
    with pytest.raises(ValueError, match="two"):
        outcomes[2].unwrap()
    assert [outcomes[i].value for i in (0, 1, 3, 4)] == [0, 1, 3, 4]


def test_break_and_garbage_collection_cancel_the_outstanding_work(fan: Fan) -> None:
    stuck = Stuck()
    for outcome in fan.stream(stuck, range(100)):
        assert outcome.value == 0
        assert stuck.all_blocked.wait(10)
        break
    gc.collect()
    assert stuck.all_cancelled.wait(10)
    assert sorted(stuck.cancelled) == [1, 2, 3]


def test_a_stream_that_is_never_read_is_cancelled_when_dropped(fan: Fan) -> None:
    stuck = Stuck()
    outcomes = fan.stream(stuck, range(1, 100))
    assert stuck.all_blocked.wait(10)
    del outcomes
    gc.collect()
    assert stuck.all_cancelled.wait(10)


def test_close_cancels_and_waits_until_the_work_has_stopped(fan: Fan) -> None:
    stuck = Stuck()
    outcomes = fan.stream(stuck, range(100))
    assert next(outcomes).value == 0
    assert stuck.all_blocked.wait(10)
    outcomes.close()
    assert sorted(stuck.cancelled) == [1, 2, 3]  # already: close waited
    assert fan.in_flight == 0
    with pytest.raises(StopIteration):
        next(outcomes)
    outcomes.close()  # twice is fine


def test_leaving_a_with_block_closes_the_stream(fan: Fan) -> None:
    stuck = Stuck()
    with fan.stream(stuck, range(100)) as outcomes:
        assert iter(outcomes) is outcomes
        assert next(outcomes).value == 0
        assert stuck.all_blocked.wait(10)
    assert sorted(stuck.cancelled) == [1, 2, 3]


def test_an_error_that_ends_the_stream_comes_after_the_outcomes_before_it(fan: Fan) -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise LookupError("input broke")

    seen: list[Outcome[int, int]] = []
    outcomes = fan.stream(lambda x: x, items(), ordered=True)
    with pytest.raises(LookupError, match="input broke"):
        seen.extend(outcomes)
    assert len(seen) <= 2
    with pytest.raises(DeadlineExceeded):
        list(fan.stream(Stuck(), range(10), deadline=0.01))


def test_a_slow_reader_holds_the_producer_back_then_gets_everything(facade_loop: Loop) -> None:
    fan = Fan(2, loop=facade_loop)
    outcomes = fan.stream(double, range(50), ordered=True)
    facade_loop.call(anyio.wait_all_tasks_blocked)
    assert outcomes._handoff._space is not None  # the producer waits for room
    assert [o.value for o in outcomes] == [2 * x for x in range(50)]
    assert list(outcomes) == []


def test_ctrl_c_while_waiting_for_an_outcome_cancels_the_stream(
    fan: Fan, ctrl_c: Callable[..., Awaitable[None]]
) -> None:
    stuck = Stuck(when_full=lambda: ctrl_c(caller="__next__"))
    outcomes = fan.stream(stuck, range(1, 100))
    with pytest.raises(KeyboardInterrupt):
        next(outcomes)
    assert stuck.all_cancelled.wait(10)
    with pytest.raises(StopIteration):
        next(outcomes)
    assert fan.map(double, [1]) == [2]


def test_ctrl_c_while_the_stream_opens_cancels_it(
    facade_loop: Loop, ctrl_c: Callable[..., Awaitable[None]]
) -> None:
    cancelled = threading.Event()

    @asynccontextmanager
    async def slow_to_open() -> AsyncIterator[AsyncIterator[Outcome[int, int]]]:
        await ctrl_c(caller="wait_started")
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        yield  # type: ignore[misc]  # pragma: no cover

    with pytest.raises(KeyboardInterrupt):
        Outcomes(facade_loop, slow_to_open, capacity=1)
    assert cancelled.wait(10)


def test_closing_from_the_loop_thread_does_not_wait_for_itself(fan: Fan) -> None:
    stuck = Stuck()
    outcomes = fan.stream(stuck, range(1, 100))
    assert stuck.all_blocked.wait(10)

    async def close_it() -> None:
        outcomes.close()

    fan.loop.call(close_it)
    assert stuck.all_cancelled.wait(10)
    assert list(outcomes) == []


def test_streams_cannot_be_read_on_the_loop_thread_or_on_a_closed_loop(fan: Fan) -> None:
    async def nested() -> Any:
        return fan.stream(double, [1])

    with pytest.raises(RuntimeError, match="own event loop's thread"):
        fan.loop.call(nested)
    fan.loop.close()
    with pytest.raises(RuntimeError, match="was closed"):
        fan.stream(double, [1])
