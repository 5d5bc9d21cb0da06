"""Results are freed as soon as the caller drops them, without the cyclic collector.

A run that ended must not sit in a reference cycle with what it produced:
then a million-item map's results, or a failed item's exception and what
its frames hold, would outlive the caller's last reference until the cyclic
collector happened to run. Each test disables that collector and checks,
through weak references, that dropping the results frees them.
"""

from __future__ import annotations

import gc
import traceback
import weakref
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import anyfan
from anyfan import FanError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

pytestmark = pytest.mark.anyio


class Value:
    """A result that can be weakly referenced."""


class Broken(Exception):
    """An item's failure."""


async def call(i: int) -> Value:
    await anyio.sleep(0)
    if i % 2:
        raise Broken(i)
    return Value()


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def retry() -> anyfan.Retry:
    # Never retries a `Broken` item: the policy's path, one attempt each.
    return anyfan.Retry(2, retry_on=(TimeoutError,), budget=None)


MAPS: dict[str, Callable[[], Awaitable[list[Any]]]] = {
    "map": lambda: anyfan.map(call, range(6), concurrency=2, errors="return"),
    "Fan.map": lambda: anyfan.Fan(2).map(call, range(6), errors="return"),
    "timeout": lambda: anyfan.map(call, range(6), concurrency=2, timeout=60, errors="return"),
    "retry": lambda: anyfan.map(call, range(6), concurrency=2, retry=retry(), errors="return"),
    "limits": lambda: anyfan.map(
        call, range(6), concurrency=2, limits=[anyfan.Rate(1_000_000)], errors="return"
    ),
}


@pytest.mark.usefixtures("no_cyclic_gc")
@pytest.mark.parametrize("run", list(MAPS.values()), ids=list(MAPS))
async def test_dropped_map_results_are_freed_at_once(
    run: Callable[[], Awaitable[list[Any]]],
) -> None:
    results = await run()
    value, error = weakref.ref(results[0]), weakref.ref(results[1])
    assert isinstance(value(), Value)
    assert isinstance(error(), Broken)
    del results
    assert value() is None
    assert error() is None


@pytest.mark.usefixtures("no_cyclic_gc")
@pytest.mark.parametrize("fan", [None, anyfan.Fan(2)], ids=["stream", "Fan.stream"])
async def test_dropped_outcomes_are_freed_at_once(fan: anyfan.Fan | None) -> None:
    streamer = anyfan if fan is None else fan
    async with streamer.stream(call, range(6), concurrency=2, ordered=True) as outcomes:
        kept = [outcome async for outcome in outcomes]
    value, error = weakref.ref(kept[0].unwrap()), weakref.ref(kept[1].error)
    del kept
    assert value() is None
    assert error() is None


@pytest.mark.usefixtures("no_cyclic_gc")
async def test_a_raised_failure_frees_the_run() -> None:
    done = weakref.WeakSet[Value]()

    async def call_and_keep(i: int) -> Value:
        value = await call(i)
        done.add(value)
        return value

    with pytest.raises(FanError) as caught:
        await anyfan.map(call_and_keep, range(6), concurrency=1, errors="collect")
    assert len(done) == 3
    del caught
    assert len(done) == 0


@pytest.mark.parametrize("run", list(MAPS.values()), ids=list(MAPS))
async def test_a_kept_error_traceback_starts_at_the_call(
    run: Callable[[], Awaitable[list[Any]]],
) -> None:
    error = (await run())[1]
    assert isinstance(error, Broken)
    assert traceback.extract_tb(error.__traceback__)[0].name == "call"


async def test_an_outcome_error_traceback_starts_at_the_call() -> None:
    async with anyfan.stream(call, [1]) as outcomes:
        (outcome,) = [outcome async for outcome in outcomes]
    assert isinstance(outcome.error, Broken)
    assert traceback.extract_tb(outcome.error.__traceback__)[0].name == "call"
