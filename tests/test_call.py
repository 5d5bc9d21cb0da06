"""`Fan.call` and `Fan.wrap`: one call under the Fan's shared limits, on every backend."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import anyfan
from anyfan import Fan, FanError, Outcome, PauseEvent, Rate, Retry, RetryEvent
from strategies import Crowd

pytestmark = pytest.mark.anyio


class Flaky:
    """Fails with ``error`` for the first ``failures`` calls of each item, then echoes it."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls: dict[Any, int] = {}

    async def __call__(self, item: Any) -> Any:
        n = self.calls[item] = self.calls.get(item, 0) + 1
        await anyio.lowlevel.checkpoint()
        if n <= self.failures:
            raise self.error(f"{item} failed {n}")
        return item


def fast_retry(attempts: int = 3, **options: Any) -> Retry:
    return Retry(attempts, backoff=0.001, max_backoff=0.001, budget=None, **options)


async def double(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return 2 * x


async def test_call_returns_the_value_and_counts_it() -> None:
    fan = Fan(4)
    assert await fan.call(double, 21) == 42
    stats = fan.stats
    assert (stats.started, stats.succeeded, stats.failed, stats.in_flight) == (1, 1, 0, 0)


async def test_call_raises_the_calls_own_exception_never_a_fan_error() -> None:
    fan = Fan(4)
    error = KeyError("missing")

    async def fail(_: int) -> None:
        raise error

    with pytest.raises(KeyError) as caught:
        await fan.call(fail, 1)
    assert caught.value is error
    assert not isinstance(caught.value, FanError)
    assert fan.stats.failed == 1


async def test_concurrent_calls_share_the_slots_and_reach_them() -> None:
    fan = Fan(3)
    crowd = Crowd(3)
    results: list[int] = []

    async def caller(i: int) -> None:
        results.append(await fan.call(crowd, i))

    async with anyio.create_task_group() as tg:
        for i in range(12):
            tg.start_soon(caller, i)
    assert sorted(results) == list(range(12))
    assert crowd.peak == 3
    assert fan.in_flight == 0


async def test_calls_and_a_running_map_share_one_limit() -> None:
    fan = Fan(4)
    crowd = Crowd(4)
    got: list[Any] = []

    async def one(i: int) -> None:
        got.append(await fan.call(crowd, i))

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: _collect(fan.map(crowd, range(100, 110)), got))
        for i in range(6):
            tg.start_soon(one, i)
    assert sorted(got, key=str) == sorted([*range(6), list(range(100, 110))], key=str)
    assert crowd.peak == 4


async def _collect(awaitable: Any, into: list[Any]) -> None:
    into.append(await awaitable)


async def test_retries_are_made_and_reported() -> None:
    events: list[RetryEvent[Any]] = []
    outcomes: list[Outcome[Any, Any]] = []
    flaky = Flaky(2)
    fan = Fan(2, retry=fast_retry(), on_retry=events.append)
    assert await fan.call(flaky, "a", on_outcome=outcomes.append) == "a"
    assert [(e.item, e.attempt, type(e.error)) for e in events] == [
        ("a", 1, ConnectionError),
        ("a", 2, ConnectionError),
    ]
    assert all(e.delay <= 0.001 and e.elapsed >= 0 for e in events)
    [outcome] = outcomes
    assert (outcome.item, outcome.value, outcome.attempts, outcome.error) == ("a", "a", 3, None)
    assert outcome.elapsed >= 0
    stats = fan.stats
    assert (stats.started, stats.retried, stats.succeeded, stats.failed) == (3, 2, 1, 0)


async def test_the_final_exception_after_retries_is_the_calls_own() -> None:
    outcomes: list[Outcome[Any, Any]] = []
    fan = Fan(2, retry=fast_retry(2))
    with pytest.raises(ConnectionError, match="b failed 2"):
        await fan.call(Flaky(5), "b", on_outcome=outcomes.append)
    assert outcomes[0].attempts == 2
    assert isinstance(outcomes[0].error, ConnectionError)


async def test_per_call_options_override_the_fans() -> None:
    fan = Fan(2, retry=fast_retry(5))
    flaky = Flaky(1)
    with pytest.raises(ConnectionError):
        await fan.call(flaky, "x", retry=None)
    assert await fan.call(flaky, "x") == "x"
    extra = Rate(1000)
    assert await fan.call(double, 2, limits=[extra]) == 4
    with pytest.raises(TypeError, match="retry"):
        await fan.call(double, 1, retry="often")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="on_outcome"):
        await fan.call(double, 1, on_outcome="print")  # type: ignore[call-overload]


async def test_timeout_applies_to_each_call() -> None:
    fan = Fan(2, timeout=0.01)

    async def forever(_: int) -> None:
        await anyio.sleep_forever()

    with pytest.raises(TimeoutError):
        await fan.call(forever, 1)
    with pytest.raises(TimeoutError):
        await fan.call(forever, 1, retry=None)
    assert await fan.call(double, 1, timeout=None) == 2
    assert fan.stats.failed == 2


async def test_timeout_with_on_outcome_on_the_fast_path() -> None:
    outcomes: list[Outcome[Any, Any]] = []
    fan = Fan(2, timeout=5)
    assert await fan.call(double, 3, on_outcome=outcomes.append) == 6

    async def fail(_: int) -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await fan.call(fail, 3, on_outcome=outcomes.append)
    assert [(o.value, type(o.error)) for o in outcomes] == [(6, type(None)), (None, ValueError)]


async def test_a_sync_function_runs_in_a_worker_thread() -> None:
    fan = Fan(2)
    here = threading.get_ident()

    def where(_: int) -> int:
        return threading.get_ident()

    assert await fan.call(where, 1) != here
    assert await fan.call(where, 2) != here  # the cached wrapper, second time round


async def test_a_pause_the_server_asks_for_is_reported() -> None:
    pauses: list[PauseEvent[Any]] = []
    retries: list[RetryEvent[Any]] = []

    class Busy(Exception):
        pass

    fan = Fan(
        4,
        retry=fast_retry(2, retry_on=Busy, delay_hint=lambda e: 0.02, ramp=0),
        on_pause=pauses.append,
        on_retry=retries.append,
    )
    flaky = Flaky(1, Busy)
    assert await fan.call(flaky, "p") == "p"
    [event] = pauses
    assert (event.item, event.seconds, type(event.error)) == ("p", 0.02, Busy)
    assert 0 < event.added <= 0.02
    assert retries[0].delay == 0.02
    assert fan.stats.paused > 0


async def test_cancelling_a_waiting_caller_leaks_no_slot() -> None:
    fan = Fan(1)
    release = anyio.Event()

    async def hold(_: int) -> None:
        await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(fan.call, hold, 1)
        await wait_until(lambda: fan.in_flight == 1)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await fan.call(double, 2)
        release.set()
    assert fan.in_flight == 0
    assert await fan.call(double, 3) == 6


async def test_cancelling_a_running_call_counts_it_cancelled() -> None:
    for fan in (Fan(1), Fan(1, retry=fast_retry())):
        async with anyio.create_task_group() as tg:
            tg.start_soon(fan.call, anyio.sleep, 1000)
            await wait_until(lambda fan=fan: fan.in_flight == 1)
            tg.cancel_scope.cancel()
        assert fan.stats.cancelled == 1
        assert fan.in_flight == 0


async def wait_until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError("condition never became true")


async def test_wrap_is_a_decorator_that_keeps_the_name() -> None:
    fan = Fan(2, retry=fast_retry())
    flaky = Flaky(1)

    @fan.wrap
    async def ask(item: str) -> str:
        """Ask."""
        return str(await flaky(item))

    assert ask.__name__ == "ask"
    assert ask.__doc__ == "Ask."
    assert await ask("q") == "q"
    assert fan.stats.retried == 1


async def test_wrap_fixes_options_and_rejects_bad_ones_at_once() -> None:
    fan = Fan(2, retry=fast_retry())
    no_retry = fan.wrap(Flaky(1), retry=None, timeout=5, limits=[Rate(100)])
    with pytest.raises(ConnectionError):
        await no_retry("z")
    with pytest.raises(ValueError, match="timeout"):
        fan.wrap(double, timeout=-1)
    with pytest.raises(TypeError, match="function"):
        fan.wrap("double")  # type: ignore[call-overload]


async def test_a_hook_that_fails_fails_the_call() -> None:
    def broken(_: RetryEvent[Any]) -> None:
        raise RuntimeError("hook broke")

    fan = Fan(2, retry=fast_retry(), on_retry=broken)
    with pytest.raises(RuntimeError, match="hook broke"):
        await fan.call(Flaky(1), "h")
    assert fan.in_flight == 0


def test_hooks_must_be_callable() -> None:
    with pytest.raises(TypeError, match="on_retry"):
        Fan(on_retry=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_pause"):
        Fan(on_pause="x")  # type: ignore[arg-type]


async def test_one_shot_functions_take_the_hooks() -> None:
    events: list[RetryEvent[Any]] = []
    flaky = Flaky(1)
    assert await anyfan.map(flaky, [1, 2], retry=fast_retry(), on_retry=events.append) == [1, 2]
    assert sorted(e.item for e in events) == [1, 2]
    async with anyfan.stream(flaky, [3], retry=fast_retry(), on_retry=events.append) as out:
        assert [o.value async for o in out] == [3]
    assert len(events) == 3


def test_one_fan_serves_calls_from_successive_event_loops() -> None:
    fan = Fan(2, limits=[Rate(1000)], retry=fast_retry())

    def plus_one(x: int) -> int:
        return x + 1

    async def main() -> tuple[int, int, int]:
        return await fan.call(double, 5), await plain.call(plus_one, 1), fan.stats.succeeded

    plain = Fan(2)
    runs = [("asyncio", {}), *_trio(), ("asyncio", {})]
    for n, (backend, options) in enumerate(runs, 1):
        assert anyio.run(main, backend=backend, backend_options=options) == (10, 2, n)


def _trio() -> list[tuple[str, dict[str, Any]]]:
    from strategies import HAS_TRIO

    return [("trio", {})] if HAS_TRIO else []


async def test_a_sync_call_that_overruns_its_timeout_is_discarded() -> None:
    import time

    def slow(_: int) -> int:
        time.sleep(0.05)  # in a worker thread, which cannot be interrupted
        return 1

    for fan in (Fan(2, timeout=0.005), Fan(2, timeout=0.005, limits=[Rate(1000)])):
        with pytest.raises(TimeoutError, match="longer than its timeout"):
            await fan.call(slow, 1)


async def test_a_shorter_pause_does_not_extend_the_hold() -> None:
    pauses: list[PauseEvent[Any]] = []

    class Busy(Exception):
        pass

    async def busy(item: tuple[int, float]) -> None:
        steps, hint = item
        for _ in range(steps):
            await anyio.lowlevel.checkpoint()
        raise Busy(hint)

    retry = Retry(1, retry_on=Busy, delay_hint=lambda e: e.args[0])
    fan = Fan(2, retry=retry, on_pause=pauses.append)
    errors: list[BaseException] = []

    async def caller(item: tuple[int, float]) -> None:
        try:
            await fan.call(busy, item)
        except Busy as error:
            errors.append(error)

    async with anyio.create_task_group() as tg:
        tg.start_soon(caller, (2, 30.0))  # pauses everyone for 30 s
        tg.start_soon(caller, (6, 0.001))  # asks for less: no extension
    assert len(errors) == 2
    assert [event.seconds for event in pauses] == [30.0]
