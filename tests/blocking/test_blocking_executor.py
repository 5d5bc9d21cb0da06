"""anyfan's Executor: a concurrent.futures.Executor for async and sync callables."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from anyfan.blocking import Executor, Loop
from strategies import Crowd

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator


async def double(x: int) -> int:
    await anyio.sleep(0)
    return 2 * x


async def forever(*_: Any) -> None:
    await anyio.sleep_forever()


async def make_event() -> anyio.Event:
    return anyio.Event()


async def make_crowd(size: int) -> Crowd:
    return Crowd(size)


@pytest.fixture
def executor(facade_loop: Loop) -> Iterator[Executor]:
    with Executor(4, loop=facade_loop) as executor:
        yield executor


def test_submit_takes_async_and_sync_callables(executor: Executor) -> None:
    future = executor.submit(double, 21)
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(10) == 42
    assert executor.submit(pow, 2, exp=10).result(10) == 1024
    assert executor.submit(lambda: double(5)).result(10) == 10  # an awaitable is awaited
    assert threading.current_thread() is not executor.submit(threading.current_thread).result(10)


def test_failures_land_in_the_futures(executor: Executor) -> None:
    async def fail() -> None:
        raise ValueError("async failure")

    def fail_sync() -> None:
        raise KeyError("sync failure")

    with pytest.raises(ValueError, match="async failure"):
        executor.submit(fail).result(10)
    assert isinstance(executor.submit(fail_sync).exception(10), KeyError)
    assert executor.submit(double, 1).result(10) == 2


def test_base_exceptions_are_handed_to_the_future_not_to_the_executor(executor: Executor) -> None:
    async def interrupt() -> None:
        raise KeyboardInterrupt

    def exit_sync() -> None:
        raise SystemExit(3)

    assert isinstance(executor.submit(interrupt).exception(10), KeyboardInterrupt)
    assert isinstance(executor.submit(exit_sync).exception(10), SystemExit)
    assert executor.submit(double, 2).result(10) == 4


def test_map_keeps_input_order_and_zips_iterables(executor: Executor, facade_loop: Loop) -> None:
    assert list(executor.map(double, range(50))) == [2 * x for x in range(50)]
    assert list(executor.map(pow, [2, 3], [3, 2])) == [8, 9]
    gate = facade_loop.call(make_event)
    with pytest.raises(TimeoutError):
        list(executor.map(lambda _: gate.wait(), [1], timeout=0.01))
    facade_loop.post(gate.set)


def test_a_drop_in_for_a_thread_pool_that_wraps_asyncio_run(executor: Executor) -> None:
    def legacy_task(x: int) -> int:
        return asyncio.run(double(x))

    assert list(executor.map(legacy_task, range(4))) == [0, 2, 4, 6]


def test_no_more_than_concurrency_run_at_once(facade_loop: Loop) -> None:
    crowd = facade_loop.call(make_crowd, 3)
    with Executor(3, loop=facade_loop) as executor:
        assert list(executor.map(crowd, range(30))) == list(range(30))
    assert crowd.peak == 3


def test_many_threads_can_submit_at_once(executor: Executor) -> None:
    results: dict[int, list[int]] = {}

    def submitter(n: int) -> None:
        futures = [executor.submit(double, n * 100 + i) for i in range(100)]
        results[n] = [f.result(30) for f in futures]

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {n: [2 * (n * 100 + i) for i in range(100)] for n in range(8)}


def test_shutdown_waits_for_submitted_work(facade_loop: Loop) -> None:
    executor = Executor(2, loop=facade_loop)
    futures = [executor.submit(double, x) for x in range(20)]
    executor.shutdown(wait=True)
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == [2 * x for x in range(20)]
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        executor.submit(double, 1)
    assert not facade_loop.closed  # a shared loop outlives the executor


def test_shutdown_can_cancel_what_has_not_started(facade_loop: Loop) -> None:
    gate = facade_loop.call(make_event)
    started = threading.Event()

    async def first() -> str:
        started.set()
        await gate.wait()
        return "first"

    executor = Executor(1, loop=facade_loop)
    running = executor.submit(first)
    assert started.wait(10)
    queued = [executor.submit(double, x) for x in range(5)]
    executor.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    facade_loop.post(gate.set)
    executor.shutdown(wait=True)
    assert running.result() == "first"


def test_a_future_cancelled_before_it_starts_never_runs(facade_loop: Loop) -> None:
    gate = facade_loop.call(make_event)
    ran: list[int] = []

    async def record(x: int) -> None:
        ran.append(x)
        await gate.wait()

    with Executor(1, loop=facade_loop) as executor:
        first = executor.submit(record, 1)
        second = executor.submit(record, 2)
        assert second.cancel()
        facade_loop.post(gate.set)
        assert first.result(10) is None
    assert ran == [1]
    assert second.cancelled()


def test_fan_options_apply_to_each_call(facade_loop: Loop) -> None:
    with Executor(2, timeout=0.01, loop=facade_loop) as executor:
        assert isinstance(executor.submit(forever).exception(10), TimeoutError)
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        Executor(0)
    with pytest.raises(TypeError, match="no_such_option"):
        Executor(2, no_such_option=True)


def test_closing_the_loop_under_it_breaks_the_executor(facade_loop: Loop) -> None:
    started = threading.Event()

    async def stuck() -> None:
        started.set()
        await anyio.sleep_forever()

    executor = Executor(1, loop=facade_loop)
    running = executor.submit(stuck)
    queued = executor.submit(double, 1)
    assert started.wait(10)
    facade_loop.close()
    assert isinstance(running.exception(10), concurrent.futures.BrokenExecutor)
    assert isinstance(queued.exception(10), concurrent.futures.BrokenExecutor)
    with pytest.raises(concurrent.futures.BrokenExecutor, match="event loop stopped"):
        executor.submit(double, 1)
    executor.shutdown()


def test_ctrl_c_during_shutdown_cancels_the_work_and_re_raises(
    facade_loop: Loop, ctrl_c: Callable[..., Awaitable[None]]
) -> None:
    async def press_then_hang() -> None:
        await ctrl_c(caller="shutdown")
        await anyio.sleep_forever()

    executor = Executor(2, loop=facade_loop)
    futures = [executor.submit(press_then_hang), executor.submit(forever)]
    with pytest.raises(KeyboardInterrupt):
        executor.shutdown(wait=True)
    for future in futures:
        assert isinstance(future.exception(10), concurrent.futures.BrokenExecutor)
    assert facade_loop.call(double, 1) == 2


def test_shutdown_from_the_executors_loop_thread_raises(facade_loop: Loop) -> None:
    executor = Executor(2, loop=facade_loop)
    assert executor.submit(double, 1).result(10) == 2

    async def shut() -> None:
        executor.shutdown(wait=True)

    with pytest.raises(RuntimeError, match="own event loop's thread"):
        facade_loop.call(shut)
    executor.shutdown(wait=True)


def test_an_executor_with_its_own_loop_stops_it(anyio_backend: Any) -> None:
    name, options = anyio_backend
    with Executor(2, backend=name, backend_options=options) as executor:
        assert list(executor.map(double, range(3))) == [0, 2, 4]
        loop = executor._engine._loop
        assert loop.backend == name
        assert "concurrency=2" in repr(executor)
    assert loop.closed
    unused = Executor(2)
    unused.shutdown(wait=False)
    assert unused._engine._loop.closed


def test_a_forgotten_executor_finishes_its_work_then_stops_its_loop() -> None:
    executor = Executor(2)
    loop = executor._engine._loop
    future = executor.submit(double, 4)
    del executor
    gc.collect()
    assert future.result(10) == 8
    thread = loop._thread
    if thread is not None:
        thread.join(10)
    assert loop.closed


def test_an_unused_executor_on_a_shared_loop_shuts_down_quietly(facade_loop: Loop) -> None:
    Executor(2, loop=facade_loop).shutdown()
    assert not facade_loop.closed


def test_work_does_not_inherit_the_context_of_whoever_submitted_first(
    facade_loop: Loop,
) -> None:
    import contextvars

    user: contextvars.ContextVar[str] = contextvars.ContextVar("user", default="nobody")

    async def who() -> str:
        return user.get()

    executor = Executor(2, loop=facade_loop)
    token = user.set("alice")
    try:
        first = executor.submit(who).result(10)
    finally:
        user.reset(token)
    assert first == "nobody"  # like ThreadPoolExecutor: no context is carried over
    executor.shutdown()
