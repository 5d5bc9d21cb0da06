"""`anyfan.map`: results in input order, any input, sync or async callables, error policies."""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

import anyfan
from anyfan import DeadlineExceeded, FanError
from anyfan._core._engine import is_async_callable
from strategies import (
    CLOCKED_BACKEND_IDS,
    Boom,
    CountingInput,
    Job,
    Probe,
    clocked_backend,
    trio_mock_clock,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable

pytestmark = pytest.mark.anyio


async def wait_until(condition: Callable[[], bool], *, steps: int = 10_000) -> None:
    """Let other tasks run until ``condition()`` holds (bounded by steps, not by a clock)."""
    for _ in range(steps):
        if condition():
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError("condition never held")


async def test_results_come_in_input_order_whatever_the_finish_order() -> None:
    gates = [anyio.Event() for _ in range(5)]
    started: list[int] = []
    finished: list[int] = []

    async def call(i: int) -> int:
        started.append(i)
        await gates[i].wait()
        finished.append(i)
        return i * i

    def finished_last(i: int) -> Callable[[], bool]:
        return lambda: finished[-1:] == [i]

    async def open_gates_backwards() -> None:
        await wait_until(lambda: len(started) == 5)
        for i in reversed(range(5)):
            gates[i].set()
            await wait_until(finished_last(i))

    async with anyio.create_task_group() as tg:
        tg.start_soon(open_gates_backwards)
        results = await anyfan.map(call, range(5), concurrency=5)
    assert finished == [4, 3, 2, 1, 0]
    assert results == [0, 1, 4, 9, 16]


async def test_empty_input() -> None:
    probe = Probe()
    assert await anyfan.map(probe, []) == []
    assert probe.started == []


@pytest.mark.parametrize(
    "make_items",
    [
        list,
        tuple,
        lambda jobs: iter(jobs),
        lambda jobs: (job for job in jobs),
        lambda jobs: dict.fromkeys(jobs),
        lambda jobs: CountingInput(jobs),
    ],
    ids=["list", "tuple", "iterator", "generator", "dict", "iterable"],
)
@pytest.mark.parametrize("concurrency", [1, 3, 100])
async def test_any_sync_iterable(
    make_items: Callable[[list[Job]], Iterable[Job]], concurrency: int
) -> None:
    jobs = [Job(i, steps=i % 3) for i in range(20)]
    probe = Probe()
    assert await anyfan.map(probe, make_items(jobs), concurrency=concurrency) == [
        job.value for job in jobs
    ]
    assert sorted(probe.finished) == list(range(20))
    assert probe.peak <= concurrency


class _AsyncIterator:
    """A hand-written async iterator with no ``aclose``."""

    def __init__(self, jobs: list[Job]) -> None:
        self._jobs = iter(jobs)

    def __aiter__(self) -> _AsyncIterator:
        return self

    async def __anext__(self) -> Job:
        await anyio.lowlevel.checkpoint()
        try:
            return next(self._jobs)
        except StopIteration:
            raise StopAsyncIteration from None


class _AsyncIterable:
    """An async iterable whose iterators are async generators, recording their cleanup."""

    def __init__(self, jobs: list[Job], *, plain: bool = False) -> None:
        self.jobs = jobs
        self.plain = plain
        self.closed = 0
        self.pulled = 0

    def __aiter__(self) -> Any:
        if self.plain:
            return _AsyncIterator(self.jobs)
        return self._generate()

    async def _generate(self) -> AsyncIterator[Job]:
        try:
            for job in self.jobs:
                await anyio.lowlevel.checkpoint()
                self.pulled += 1
                yield job
        finally:
            self.closed += 1


async def _agen(jobs: list[Job], state: dict[str, bool]) -> AsyncGenerator[Job, None]:
    try:
        for job in jobs:
            await anyio.lowlevel.checkpoint()
            yield job
    finally:
        state["closed"] = True


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_async_iterables(concurrency: int) -> None:
    jobs = [Job(i, steps=i % 2) for i in range(12)]
    expected = [job.value for job in jobs]
    state = {"closed": False}
    assert await anyfan.map(Probe(), _agen(jobs, state), concurrency=concurrency) == expected
    assert state["closed"]
    assert await anyfan.map(Probe(), _AsyncIterator(jobs), concurrency=concurrency) == expected
    assert await anyfan.map(Probe(), _AsyncIterable(jobs), concurrency=concurrency) == expected
    assert (
        await anyfan.map(Probe(), _AsyncIterable(jobs, plain=True), concurrency=concurrency)
        == expected
    )


async def test_owned_async_iterator_is_closed_when_the_run_stops_early() -> None:
    # anyfan called __aiter__, so it owns that iterator and must clean it up.
    jobs = [Job(0, fails=True)] + [Job(i, steps=50) for i in range(1, 100)]
    source = _AsyncIterable(jobs)
    with pytest.raises(FanError):
        await anyfan.map(Probe(), source, concurrency=2)
    assert source.pulled < len(jobs)
    assert source.closed == 1


async def test_callers_async_generator_is_left_for_the_caller_to_close() -> None:
    # Like `async for`, anyfan does not close an iterator it was handed.
    jobs = [Job(0, fails=True)] + [Job(i, steps=50) for i in range(1, 100)]
    state = {"closed": False}
    agen = _agen(jobs, state)
    with pytest.raises(FanError):
        await anyfan.map(Probe(), agen, concurrency=2)
    assert not state["closed"]
    assert await agen.__anext__() in jobs  # still usable
    await agen.aclose()
    assert state["closed"]


async def test_sync_callable_runs_in_worker_threads() -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def call(x: int) -> int:
        threads.append(threading.get_ident())
        return x + 1

    assert await anyfan.map(call, range(10), concurrency=3) == list(range(1, 11))
    assert len(threads) == 10
    assert loop_thread not in threads


@pytest.mark.parametrize("concurrency", [3, 45])
async def test_sync_callables_respect_the_limit_and_reach_it(concurrency: int) -> None:
    # 45 is above anyio's default pool of 40 threads: the limit is ours, not the pool's.
    lock = threading.Lock()
    full = threading.Event()
    state = {"active": 0, "peak": 0}

    def call(x: int) -> int:
        with lock:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
            if state["active"] == concurrency:
                full.set()
        full.wait(10)  # a guard against a hang, not a timing: released once the pool fills
        with lock:
            state["active"] -= 1
        return x

    assert await anyfan.map(call, range(3 * concurrency), concurrency=concurrency) == list(
        range(3 * concurrency)
    )
    assert state["peak"] == concurrency
    assert state["active"] == 0


async def test_lambda_returning_a_coroutine_is_awaited() -> None:
    probe = Probe()
    assert await anyfan.map(lambda i: probe(Job(i, steps=2)), range(6), concurrency=2) == [
        i * 10 for i in range(6)
    ]
    assert sorted(probe.finished) == list(range(6))
    assert probe.peak <= 2


async def test_sync_callable_failure_is_reported() -> None:
    def call(x: int) -> int:
        if x == 2:
            raise ValueError("two")
        return x

    results = await anyfan.map(call, range(4), errors="return")
    assert results[:2] == [0, 1]
    assert isinstance(results[2], ValueError)
    assert results[3] == 3


class _AsyncCallable:
    async def __call__(self, x: int) -> int:
        return threading.get_ident()

    async def method(self, x: int) -> int:
        return threading.get_ident()


async def _ident(x: int, *, extra: int = 0) -> int:
    return threading.get_ident() + extra


def _sync_ident(x: int, *, extra: int = 0) -> int:
    return threading.get_ident() + extra


@pytest.mark.parametrize(
    ("fn", "is_async"),
    [
        (_ident, True),
        (functools.partial(_ident, extra=0), True),
        (functools.partial(functools.partial(_ident), extra=0), True),
        (_AsyncCallable(), True),
        (_AsyncCallable().method, True),
        (_sync_ident, False),
        (functools.partial(_sync_ident, extra=0), False),
        (lambda x: threading.get_ident(), False),
    ],
    ids=[
        "function",
        "partial",
        "nested-partial",
        "callable",
        "method",
        "sync",
        "sync-partial",
        "lambda",
    ],
)
async def test_async_callables_run_on_the_loop_and_sync_ones_in_threads(
    fn: Callable[[int], Any], is_async: bool
) -> None:
    assert is_async_callable(fn) is is_async
    loop_thread = threading.get_ident()
    threads = await anyfan.map(fn, range(3))
    assert all((thread == loop_thread) is is_async for thread in threads)


async def test_raise_policy_stops_at_the_first_failure_and_cancels_the_rest() -> None:
    probe = Probe()
    jobs = [Job(i, steps=10_000) for i in range(20)]
    jobs[2] = Job(2, fails=True)
    with pytest.raises(FanError) as info:
        await anyfan.map(probe, jobs, concurrency=4)
    error = info.value
    assert error.failures == [(2, probe.raised[2])]
    assert error.results is None
    assert str(error).startswith("1 call failed before the fan-out stopped")
    assert probe.raised[2].__notes__ == ["anyfan: raised by the call for item #2"]
    probe.assert_settled()
    assert probe.finished == []
    assert len(probe.started) <= 4, "nothing new starts after the failure"


async def test_raise_policy_with_simultaneous_failures_reports_each_once() -> None:
    probe = Probe()
    jobs = [Job(i, steps=1, fails=True) for i in range(8)]
    with pytest.raises(FanError) as info:
        await anyfan.map(probe, jobs, concurrency=8)
    error = info.value
    assert len(error.indices) == len(set(error.indices)) >= 1
    assert list(error.indices) == sorted(error.indices)
    assert dict(error.failures) == probe.raised
    probe.assert_settled()


async def test_raise_policy_works_with_except_star() -> None:
    jobs = [Job(0, steps=1), Job(1, fails=True), Job(2, steps=10_000)]
    caught: list[BaseExceptionGroup[Exception]] = []
    try:
        await anyfan.map(Probe(), jobs, concurrency=3)
    except* Boom as group:
        caught.append(group)
    assert [type(g) for g in caught] == [FanError]
    assert [g.indices for g in caught] == [(1,)]  # type: ignore[attr-defined]


async def test_collect_policy_runs_everything_then_raises() -> None:
    probe = Probe()
    jobs = [Job(i, steps=i % 4, fails=i % 3 == 1) for i in range(12)]
    with pytest.raises(FanError) as info:
        await anyfan.map(probe, jobs, concurrency=3, errors="collect")
    error = info.value
    failed = [job.index for job in jobs if job.fails]
    assert error.indices == tuple(failed)
    assert list(error.exceptions) == [probe.raised[i] for i in failed]
    assert str(error).startswith(f"{len(failed)} of 12 calls failed")
    assert error.results == [probe.raised.get(job.index, job.value) for job in jobs]
    assert error.successes() == {job.index: job.value for job in jobs if not job.fails}
    assert sorted(probe.started) == list(range(12))
    probe.assert_settled()


async def test_collect_policy_without_failures_returns_values() -> None:
    jobs = [Job(i, steps=i % 3) for i in range(7)]
    assert await anyfan.map(Probe(), jobs, errors="collect") == [job.value for job in jobs]


async def test_return_policy_puts_exceptions_in_place() -> None:
    probe = Probe()
    jobs = [Job(i, steps=i % 4, fails=i % 3 == 1) for i in range(12)]
    results = await anyfan.map(probe, jobs, concurrency=3, errors="return")
    assert results == [probe.raised.get(job.index, job.value) for job in jobs]
    probe.assert_settled()


async def test_failing_input_iterator_propagates_unwrapped() -> None:
    probe = Probe()

    def items() -> Iterable[Job]:
        yield Job(0, steps=1)
        yield Job(1, steps=3)
        raise LookupError("input broke")

    with pytest.raises(LookupError, match="input broke"):
        await anyfan.map(probe, items(), concurrency=4)
    probe.assert_settled()


async def test_failing_async_input_iterator_propagates_unwrapped() -> None:
    probe = Probe()

    async def items() -> AsyncIterator[Job]:
        yield Job(0, steps=1)
        yield Job(1, steps=3)
        raise LookupError("input broke")

    with pytest.raises(LookupError, match="input broke"):
        await anyfan.map(probe, items(), concurrency=4)
    probe.assert_settled()


async def test_non_iterable_input_is_rejected() -> None:
    with pytest.raises(TypeError):
        await anyfan.map(Probe(), 42)  # type: ignore[call-overload]


@pytest.mark.parametrize("concurrency", [1, 3, 8])
async def test_items_are_pulled_lazily(concurrency: int) -> None:
    probe = Probe()
    excess: list[int] = []
    source = CountingInput([Job(i, steps=i % 5) for i in range(60)])
    source.on_pull = lambda pulled: excess.append(pulled - probe.ended)
    await anyfan.map(probe, source, concurrency=concurrency)
    assert source.pulled == 60
    assert max(excess) <= concurrency


async def test_calls_that_never_suspend_still_let_cancellation_in() -> None:
    calls: list[int] = []
    with anyio.CancelScope() as scope:

        async def call(i: int) -> int:
            calls.append(i)
            if i == 5:
                scope.cancel()
            return i

        await anyfan.map(call, range(10_000), concurrency=1)
    assert scope.cancelled_caught
    assert 5 < len(calls) <= 100


class TestTimed:
    """Per-call timeouts and whole-run deadlines.

    trio runs on an autojumping MockClock; asyncio on its real clock, so every
    test here passes whatever the real timing (slow calls wait for events
    that are never set).
    """

    @pytest.fixture(params=CLOCKED_BACKEND_IDS)
    def anyio_backend(self, request: pytest.FixtureRequest) -> Any:
        return clocked_backend(request.param)

    @staticmethod
    async def call(i: int) -> int:
        if i % 2:
            await anyio.Event().wait()  # never set
        return i

    async def test_timeout_fails_the_slow_calls(self) -> None:
        results = await anyfan.map(self.call, range(4), timeout=0.05, errors="return")
        assert results[0::2] == [0, 2]
        assert all(type(r) is TimeoutError for r in results[1::2])

    async def test_timeout_under_raise_policy(self) -> None:
        with pytest.raises(FanError) as info:
            await anyfan.map(self.call, [0, 1], timeout=0.05)
        assert info.value.indices == (1,)
        assert type(info.value.exceptions[0]) is TimeoutError

    async def test_fan_timeout_is_the_default_and_can_be_overridden(self) -> None:
        fan = anyfan.Fan(timeout=0.05, errors="return")
        results: list[Any] = await fan.map(self.call, [1])
        assert type(results[0]) is TimeoutError
        results = await fan.map(self.call, [1], timeout=0.06)
        assert type(results[0]) is TimeoutError

    async def test_deadline_cancels_the_rest(self) -> None:
        probe = Probe()

        async def call(i: int) -> int:
            if i >= 3:
                await anyio.Event().wait()
            if i == 1:
                raise ValueError("one")
            return await probe(Job(i))

        with pytest.raises(DeadlineExceeded) as info:
            await anyfan.map(call, range(8), concurrency=4, deadline=0.05, errors="collect")
        completed = info.value.completed
        assert sorted(completed) == [0, 1, 2]
        assert completed[0] == 0
        assert completed[2] == 20
        assert isinstance(completed[1], ValueError)
        assert info.value.deadline == 0.05
        probe.assert_settled()

    async def test_deadline_not_reached(self) -> None:
        jobs = [Job(i, steps=2) for i in range(5)]
        assert await anyfan.map(Probe(), jobs, deadline=30) == [job.value for job in jobs]

    async def test_failure_before_the_deadline_raises_fan_error(self) -> None:
        with pytest.raises(FanError):
            await anyfan.map(Probe(), [Job(0, fails=True), Job(1, steps=10)], deadline=30)


async def test_timeout_of_a_sync_call_that_overruns_in_its_thread() -> None:
    # A thread cannot be interrupted: the call is waited for, then its late result dropped.
    # Real clocks only: a MockClock would autojump while the (untracked) threads run.
    started, release = threading.Event(), threading.Event()

    def call(i: int) -> int:
        if i == 1:
            started.set()
            release.wait(30)  # a hang guard only: the test sets it
        return i

    async def release_after_the_timeout() -> None:
        # Counted from the call's start (its timeout began before it), not from this
        # task's: a slow start of the map on a loaded machine cannot eat into it.
        await anyio.to_thread.run_sync(started.wait, 30)
        await anyio.sleep(0.1)  # twice the timeout, so it has certainly expired
        release.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(release_after_the_timeout)
        results = await anyfan.map(call, [1], timeout=0.05, errors="return")
    assert type(results[0]) is TimeoutError
    assert "timeout of 0.05s" in str(results[0])
    assert await anyfan.map(call, [0, 2], timeout=30) == [0, 2]  # in time: kept


@pytest.mark.parametrize("anyio_backend", trio_mock_clock())
async def test_deadline_with_exact_clock() -> None:
    async def call(seconds: int) -> int:
        await anyio.sleep(seconds)
        return seconds

    start = anyio.current_time()
    with pytest.raises(DeadlineExceeded) as info:
        await anyfan.map(call, [4, 1, 3, 2], deadline=2.5)
    assert info.value.completed == {1: 1, 3: 2}
    assert anyio.current_time() - start == pytest.approx(2.5)


@pytest.mark.parametrize("anyio_backend", trio_mock_clock())
async def test_timeout_override_none_disables_the_fan_timeout() -> None:
    async def call(seconds: int) -> int:
        await anyio.sleep(seconds)
        return seconds

    fan = anyfan.Fan(timeout=1, errors="return")
    results: list[Any] = await fan.map(call, [2])
    assert type(results[0]) is TimeoutError
    assert await fan.map(call, [2], timeout=None) == [2]


async def test_an_observer_sees_every_outcome_of_a_long_run_in_order_at_concurrency_one() -> None:
    # With an observer each result goes through the general delivery path,
    # which checkpoints every so many items; more items than that exercise it.
    seen: list[int] = []

    async def double(x: int) -> int:
        return 2 * x

    results = await anyfan.map(
        double, range(100), concurrency=1, on_outcome=lambda o: seen.append(o.index)
    )
    assert results == [2 * i for i in range(100)]
    assert seen == list(range(100))
