"""How many workers a run starts: at once for an input that tells its length, grown otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import pytest

import anyfan
from anyfan._core._engine import Outcomes, StreamRun, _length_hint
from anyfan._core._slots import Slots

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.anyio


async def identity(item: Any) -> Any:
    await anyio.lowlevel.checkpoint()
    return item


def numbers(n: int) -> Iterator[int]:
    yield from range(n)


class Fibbing:
    """An iterator whose length hint is broken."""

    def __init__(self, hint: object) -> None:
        self._hint = hint
        self._left = iter(range(3))

    def __iter__(self) -> Fibbing:
        return self

    def __next__(self) -> int:
        return next(self._left)

    def __length_hint__(self) -> object:
        if isinstance(self._hint, BaseException):
            raise self._hint
        return self._hint


def stream_run(items: Any, width: int, call: Any = identity) -> StreamRun[Any, Any]:
    return StreamRun(call, items, slots=Slots(width), width=width, timeout=None, deadline=None)


async def run_through(run: StreamRun[Any, Any]) -> tuple[int, list[Any]]:
    """Run ``run`` to the end; return the workers started on entry and every value."""
    async with run.running(stop_on_exit=False):
        on_entry = run._spawned
        values = [outcome.value async for outcome in Outcomes(run.channel, ordered=False)]
    return on_entry, sorted(values)


def test_length_hint_reads_what_an_iterator_says_it_holds() -> None:
    assert _length_hint(iter([1, 2, 3])) == 3
    assert _length_hint(iter(range(10**12))) == 10**12
    assert _length_hint(iter({"a": 1})) == 1
    assert _length_hint(numbers(3)) == 0  # a generator cannot tell


@pytest.mark.parametrize("hint", [-1, "many", 2.5, RuntimeError("no idea")])
def test_a_broken_length_hint_says_nothing(hint: object) -> None:
    assert _length_hint(Fibbing(hint)) == 0


@pytest.mark.parametrize(
    ("items", "width", "started"),
    [([0, 1, 2, 3, 4], 100, 5), (range(500), 100, 100), ([], 100, 1), ([7], 1, 1)],
)
async def test_a_sized_input_starts_its_workers_at_once(
    items: Any, width: int, started: int
) -> None:
    # Started together, their first calls go out in one event-loop turn.
    on_entry, values = await run_through(stream_run(items, width))
    assert on_entry == started
    assert values == list(items)


async def test_no_more_workers_than_items_the_input_said_it_held() -> None:
    run = stream_run([0, 1, 2, 3, 4], 100)
    await run_through(run)
    assert run._spawned == 5


async def test_an_input_that_cannot_tell_starts_one_worker_and_doubles() -> None:
    run = stream_run(numbers(5), 100)
    on_entry, values = await run_through(run)
    assert on_entry == 1
    assert values == [0, 1, 2, 3, 4]
    assert run._spawned == 8  # 1, 2, 4, then 8 once the fourth item was taken


async def test_a_list_that_grows_while_read_still_reaches_the_width() -> None:
    # The hint was 3; the list then grows (a crawler adding what it found), and
    # the worker that takes the first item beyond the hint grows the run to match.
    items = [0, 1, 2]
    in_flight = 0
    most = 0
    gate = anyio.Event()

    async def call(item: int) -> int:
        nonlocal in_flight, most
        if item == 0:
            items.extend(range(3, 12))
            return item
        in_flight += 1
        most = max(most, in_flight)
        if most == 10:
            gate.set()
        await gate.wait()
        in_flight -= 1
        return item

    run = stream_run(items, 10, call)
    on_entry, values = await run_through(run)
    assert on_entry == 3
    assert values == list(range(12))
    assert most == 10


async def test_every_item_one_outcome_whatever_the_start() -> None:
    # The public functions, over inputs that tell their length and ones that do not.
    for items in ([*range(30)], range(30), numbers(30), iter(range(30))):
        assert await anyfan.map(identity, items, concurrency=7) == list(range(30))
    async with anyfan.stream(identity, list(range(30)), concurrency=7) as outcomes:
        assert sorted([o.value async for o in outcomes]) == list(range(30))


async def test_a_stream_left_before_its_workers_ran_calls_nothing() -> None:
    # Its workers were started on entry, but first run once the stream is being left.
    called: list[int] = []

    async def call(item: int) -> int:
        called.append(item)
        return item

    async with anyfan.stream(call, [1, 2, 3], concurrency=10):
        pass
    assert called == []
