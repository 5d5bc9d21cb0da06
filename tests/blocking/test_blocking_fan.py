"""The blocking Fan and the module-level blocking functions: same semantics, from sync code."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import anyfan
from anyfan import DeadlineExceeded, FanError, blocking
from anyfan.blocking import Fan, Loop
from strategies import HAS_TRIO, Crowd

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator


async def double(x: int) -> int:
    await anyio.sleep(0)
    return 2 * x


def triple(x: int) -> int:
    return 3 * x


async def fail_odd(x: int) -> int:
    await anyio.sleep(0)
    if x % 2:
        raise ValueError(f"odd {x}")
    return x


async def forever(x: int) -> int:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


async def make_crowd(size: int) -> Crowd:
    return Crowd(size)


@pytest.fixture
def fan(facade_loop: Loop) -> Iterator[Fan]:
    """A Fan of 4 on the test's loop."""
    with Fan(4, loop=facade_loop) as fan:
        yield fan


def test_map_gather_and_stream_mirror_the_async_api(fan: Fan) -> None:
    assert fan.map(double, range(10)) == [2 * x for x in range(10)]
    assert fan.map(triple, iter(range(5))) == [0, 3, 6, 9, 12]
    assert fan.gather(double(1), double(2), concurrency=1) == [2, 4]
    outcomes = list(fan.stream(double, range(6), ordered=True))
    assert [(o.index, o.item, o.value) for o in outcomes] == [(i, i, 2 * i) for i in range(6)]
    assert fan.map(double, []) == []


def test_a_fan_with_its_own_loop_closes_it_on_exit(anyio_backend: Any) -> None:
    name, options = anyio_backend
    with Fan(3, backend=name, backend_options=options) as fan:
        assert fan.map(double, range(3)) == [0, 2, 4]
        loop = fan.loop
        assert loop.backend == name
    assert fan.closed
    assert loop.closed
    fan.close()  # twice is fine


def test_a_fan_on_a_shared_loop_leaves_it_running(facade_loop: Loop) -> None:
    with Fan(2, loop=facade_loop) as fan:
        fan.map(double, [1])
    assert fan.closed
    assert not facade_loop.closed
    assert Fan(2, loop=facade_loop).map(double, [1]) == [2]


def test_a_forgotten_fan_stops_its_loop() -> None:
    fan = Fan(2)
    assert fan.map(double, [1]) == [2]
    loop = fan.loop
    del fan
    gc.collect()
    assert loop.closed
    loop.close()


def test_a_closed_fan_refuses_calls_and_closes_the_coroutines_it_was_given(fan: Fan) -> None:
    fan.close()
    with pytest.raises(RuntimeError, match="is closed"):
        fan.map(double, [1])
    with pytest.raises(RuntimeError, match="is closed"):
        fan.stream(double, [1])
    coroutine = double(1)
    with pytest.raises(RuntimeError, match="is closed"):
        fan.gather(coroutine)
    assert coroutine.cr_frame is None  # closed, so it never warns that it was not awaited


def test_repr_and_properties(fan: Fan, facade_loop: Loop) -> None:
    assert repr(fan).startswith("<blocking Fan(concurrency=4")
    assert repr(facade_loop) in repr(fan)
    assert fan.concurrency == 4
    assert fan.in_flight == 0
    assert fan.loop is facade_loop
    assert not fan.closed
    assert isinstance(fan.async_fan, anyfan.Fan)
    assert fan.async_fan.concurrency == 4


def test_async_code_on_the_fans_loop_shares_its_limit(fan: Fan) -> None:
    crowd = fan.loop.call(make_crowd, 4)

    async def from_async_code() -> list[int]:
        return await fan.async_fan.map(crowd, range(10))

    outer = threading.Thread(target=fan.map, args=(crowd, range(10)))
    outer.start()
    assert fan.loop.call(from_async_code) == list(range(10))
    outer.join(10)
    assert crowd.peak == 4


def test_options_are_checked_where_they_are_given(facade_loop: Loop) -> None:
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        Fan(0, loop=facade_loop)
    with pytest.raises(ValueError, match="timeout"):
        Fan(2, timeout=-1, loop=facade_loop)
    with pytest.raises(TypeError, match="no_such_option"):
        Fan(2, no_such_option=1, loop=facade_loop)
    fan = Fan(2, loop=facade_loop)
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        fan.map(double, [1], concurrency=0)
    with pytest.raises(TypeError, match="no_such_option"):
        fan.map(double, [1], no_such_option=1)
    with pytest.raises(ValueError, match="errors must be one of"):
        fan.gather(double(1), errors="ignore")
    with pytest.raises(ValueError, match="deadline"):
        fan.stream(double, [1], deadline=0)


def test_error_policies_and_fan_error_semantics(fan: Fan) -> None:
    with pytest.raises(FanError) as info:
        fan.map(fail_odd, range(6), errors="collect")
    error = info.value
    assert error.indices == (1, 3, 5)
    assert [str(e) for e in error.exceptions] == ["odd 1", "odd 3", "odd 5"]
    assert error.successes() == {0: 0, 2: 2, 4: 4}
    assert "anyfan: raised by the call for item #1" in error.exceptions[0].__notes__
    frames = [f.name for f in traceback.extract_tb(error.exceptions[0].__traceback__)]
    assert frames[-1] == "fail_odd"

    returned = fan.map(fail_odd, range(3), errors="return")
    assert returned[0::2] == [0, 2]
    assert isinstance(returned[1], ValueError)

    with pytest.raises(FanError) as raised:
        fan.map(fail_odd, [0, 1])
    assert raised.value.indices == (1,)
    assert raised.value.results is None

    with Fan(2, errors="return", loop=fan.loop) as lenient:
        assert isinstance(lenient.map(fail_odd, [1])[0], ValueError)


def test_except_star_picks_failures_by_type(fan: Fan) -> None:
    caught: list[BaseException] = []
    try:
        fan.map(fail_odd, [1, 2, 3], errors="collect")
    except* ValueError as group:
        caught.extend(group.exceptions)
    assert [str(e) for e in caught] == ["odd 1", "odd 3"]


def test_timeouts_and_deadlines_behave_as_in_async_code(facade_loop: Loop) -> None:
    with Fan(2, timeout=0.01, loop=facade_loop) as fan, pytest.raises(FanError) as info:
        fan.map(forever, [1])
    assert isinstance(info.value.exceptions[0], TimeoutError)
    with Fan(2, loop=facade_loop) as fan, pytest.raises(DeadlineExceeded):
        fan.map(forever, range(3), deadline=0.01)


def test_sync_functions_run_in_worker_threads(fan: Fan) -> None:
    callers = fan.map(lambda _: threading.current_thread(), range(4))
    assert threading.current_thread() not in callers
    assert fan.loop._thread not in callers


def test_thirty_two_threads_share_one_fans_concurrency(facade_loop: Loop) -> None:
    limit, threads, per_thread = 5, 32, 10
    crowd = facade_loop.call(make_crowd, limit)
    fan = Fan(limit, loop=facade_loop)
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def caller(n: int) -> None:
        try:
            results[n] = fan.map(crowd, range(n * per_thread, (n + 1) * per_thread))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=caller, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert errors == []
    assert crowd.calls == threads * per_thread
    assert crowd.peak == limit  # reached, never exceeded
    for n in range(threads):
        assert results[n] == list(range(n * per_thread, (n + 1) * per_thread))
    assert fan.in_flight == 0


def test_thirty_two_threads_share_the_limit_with_sync_functions(facade_loop: Loop) -> None:
    limit = 4
    barrier = threading.Barrier(limit)
    lock = threading.Lock()
    active = peak = 0

    def call(x: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            barrier.wait(10)  # each wave proceeds only once `limit` calls are in flight
            return x
        finally:
            with lock:
                active -= 1

    fan = Fan(limit, loop=facade_loop)
    workers = [
        threading.Thread(target=fan.map, args=(call, range(n * 8, n * 8 + 8))) for n in range(32)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert peak == limit
    assert not barrier.broken


def test_calling_a_fan_from_its_own_loop_raises_a_clear_error(fan: Fan) -> None:
    async def nested(x: int) -> list[int]:
        return fan.map(double, [x])

    # As docs/how-to/jupyter.md promises: ``except RuntimeError`` catches it,
    # whatever the error policy, because it is a mistake, not one item's failure.
    for errors in ("raise", "collect", "return"):
        with pytest.raises(RuntimeError, match="own event loop's thread") as info:
            fan.map(nested, [1, 2], errors=errors)  # type: ignore[call-overload]
        assert not isinstance(info.value, FanError)
    assert fan.stats.failed == 0
    assert fan.in_flight == 0
    # A sync function runs in a worker thread, where waiting is allowed.
    assert fan.map(lambda x: fan.map(double, [x]), [1]) == [[2]]


def test_ctrl_c_cancels_the_map_and_the_fan_stays_usable(
    fan: Fan, ctrl_c: Callable[..., Awaitable[None]]
) -> None:
    started: list[int] = []
    cancelled: list[int] = []
    all_cancelled = threading.Event()

    async def call(x: int) -> int:
        started.append(x)
        if x == 0:
            await ctrl_c()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(x)
            if len(cancelled) == len(started):
                all_cancelled.set()
            raise
        raise AssertionError("unreachable")

    with pytest.raises(KeyboardInterrupt):
        fan.map(call, range(10))
    assert all_cancelled.wait(10)
    assert sorted(cancelled) == sorted(started)
    assert fan.in_flight == 0
    assert fan.map(double, [5]) == [10]


# -- module-level functions ---------------------------------------------------


def test_module_functions_run_on_the_default_loop() -> None:
    assert blocking.map(double, range(3)) == [0, 2, 4]
    assert blocking.map(triple, range(3), concurrency=1) == [0, 3, 6]
    assert blocking.gather(double(1), double(2)) == [2, 4]
    assert sorted(o.value for o in blocking.stream(double, range(3))) == [0, 2, 4]
    assert blocking.default_loop().call(anyio.sleep, 0) is None


def test_module_functions_take_a_backend_or_a_loop(facade_loop: Loop, backend_name: str) -> None:
    assert blocking.map(double, [1], loop=facade_loop) == [2]
    assert blocking.gather(double(2), loop=facade_loop) == [4]
    assert [o.value for o in blocking.stream(double, [3], loop=facade_loop)] == [6]
    if HAS_TRIO:
        assert blocking.map(double, [1], backend="trio") == [2]
        assert blocking.default_loop("trio").backend == "trio"


def test_module_gather_closes_coroutines_when_it_cannot_start(facade_loop: Loop) -> None:
    coroutine = double(1)
    with pytest.raises(ValueError, match="either loop= or backend="):
        blocking.gather(coroutine, backend="asyncio", loop=facade_loop)
    assert coroutine.cr_frame is None


def test_module_functions_report_errors_like_the_async_ones() -> None:
    with pytest.raises(FanError) as info:
        blocking.map(fail_odd, range(4), errors="collect")
    assert info.value.indices == (1, 3)
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        blocking.map(double, [1], concurrency=0)


def test_works_from_a_thread_that_already_runs_asyncio() -> None:
    async def main() -> list[int]:
        # asyncio.run would refuse here; the facade runs on its own loop thread.
        return blocking.map(double, range(3))

    assert asyncio.run(main()) == [0, 2, 4]


@pytest.mark.skipif(not HAS_TRIO, reason="needs trio")
def test_works_from_a_thread_that_already_runs_trio() -> None:
    import trio

    async def main() -> tuple[list[int], list[int]]:
        with Fan(2, backend="trio") as fan:
            return blocking.map(double, range(3)), fan.map(triple, range(3))

    assert trio.run(main) == ([0, 2, 4], [0, 3, 6])


def test_same_results_as_awaiting_directly(facade_loop: Loop) -> None:
    async def direct() -> list[Any]:
        return await anyfan.map(fail_odd, range(8), errors="return", concurrency=3)

    by_facade = blocking.map(fail_odd, range(8), errors="return", concurrency=3, loop=facade_loop)
    by_await = facade_loop.call(direct)
    assert [repr(v) for v in by_facade] == [repr(v) for v in by_await]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_blocking_map_honours_the_deadline_for_sync_callables(backend: str) -> None:
    if backend == "trio":
        pytest.importorskip("trio")

    def slow(i: int) -> int:
        time.sleep(0.1)  # starts after the 0.05 s deadline began, so always outlives it
        return i

    with pytest.raises(anyfan.DeadlineExceeded) as caught:
        anyfan.blocking.map(slow, range(2), deadline=0.05, backend=backend)  # type: ignore[call-overload]
    assert caught.value.completed == {}


def test_sync_documents_map_their_chunks_through_the_same_blocking_fan() -> None:
    # Every slot held by a document that waits on its chunks used to hang for good.
    with Fan(2) as fan:

        def document(d: int) -> list[int]:
            return fan.map(lambda c: d * 10 + c, range(3))

        assert fan.map(document, range(4)) == [[d * 10 + c for c in range(3)] for d in range(4)]
        assert fan.in_flight == 0


def test_a_misuse_under_retries_and_limits_stops_the_call_too() -> None:
    with Fan(2, retry=anyfan.Retry(3, retry_on=RuntimeError), limits=[anyfan.Rate(10_000)]) as fan:

        async def nested(x: int) -> list[int]:
            return fan.map(double, [x])

        with pytest.raises(RuntimeError, match="own event loop's thread"):
            fan.map(nested, [1, 2], errors="return")  # type: ignore[call-overload]
        assert fan.stats.retried == 0
