"""One Fan shared by nested fan-outs, and by event loops one after another (never at once)."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anyfan
from strategies import RUN_BACKENDS

pytestmark = pytest.mark.anyio

#: Only a guard so that a regression fails instead of hanging the suite.
GUARD = 60


async def guarded(work: Any) -> Any:
    with anyio.fail_after(GUARD):
        return await work


class Peak:
    """Watches how many calls of a Fan are in flight at once."""

    def __init__(self, fan: anyfan.Fan) -> None:
        self.fan = fan
        self.peak = 0

    def seen(self) -> None:
        self.peak = max(self.peak, self.fan.in_flight)


async def play_documents(concurrency: int, chunks_per_doc: list[int]) -> tuple[list[Any], int]:
    fan = anyfan.Fan(concurrency)
    peak = Peak(fan)

    async def embed(chunk: tuple[int, int]) -> int:
        peak.seen()
        await anyio.lowlevel.checkpoint()
        return chunk[0] * 100 + chunk[1]

    async def summarise(doc: int) -> list[int]:
        peak.seen()
        # The realistic shape: each document maps its chunks through the same Fan.
        return await fan.map(embed, [(doc, c) for c in range(chunks_per_doc[doc])])

    with anyio.fail_after(GUARD):
        result = await fan.map(summarise, range(len(chunks_per_doc)))
    return result, peak.peak


async def test_documents_and_their_chunks_share_one_fan_without_deadlock() -> None:
    # Fan(2) with 4 outer calls used to wait forever: both slots held by
    # documents, each waiting for a slot for its chunks.
    result, peak = await play_documents(2, [3, 1, 0, 4])
    assert result == [[0, 1, 2], [100], [], [300, 301, 302, 303]]
    assert peak <= 2


@settings(max_examples=20, deadline=None, database=None)
@given(
    concurrency=st.integers(1, 4),
    chunks=st.lists(st.integers(0, 5), max_size=8),
)
def test_nested_fan_outs_finish_within_the_limit_on_every_backend(
    concurrency: int, chunks: list[int]
) -> None:
    expected = [[d * 100 + c for c in range(n)] for d, n in enumerate(chunks)]
    for name, backend, options in RUN_BACKENDS:
        result, peak = anyio.run(
            play_documents, concurrency, chunks, backend=backend, backend_options=options
        )
        assert result == expected, name
        assert peak <= concurrency, name


async def test_three_levels_of_nesting_finish() -> None:
    fan = anyfan.Fan(1)

    async def leaf(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x

    async def middle(x: int) -> int:
        return sum(await fan.map(leaf, range(x)))

    async def top(x: int) -> int:
        return sum(await fan.map(middle, range(x)))

    with anyio.fail_after(GUARD):
        assert await fan.map(top, [3, 4]) == [1, 4]
    assert fan.in_flight == 0


async def test_a_stream_body_does_not_borrow_a_slot() -> None:
    # The body of ``async with fan.stream`` is the caller's code, not a call.
    fan = anyfan.Fan(2)
    peak = Peak(fan)

    async def work(x: int) -> int:
        peak.seen()
        await anyio.lowlevel.checkpoint()
        return x

    async with fan.stream(work, range(3), ordered=True) as outcomes:
        seen = [(o.value, await fan.map(work, [o.value, o.value])) async for o in outcomes]
    assert seen == [(0, [0, 0]), (1, [1, 1]), (2, [2, 2])]
    assert peak.peak <= 2


# -- one Fan, two event loops ---------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"), [(a, b) for a in RUN_BACKENDS for b in RUN_BACKENDS], ids=lambda b: b[0]
)
def test_a_second_event_loop_at_once_is_refused_and_later_ones_work(
    first: tuple[str, str, dict[str, Any]], second: tuple[str, str, dict[str, Any]]
) -> None:
    fan = anyfan.Fan(2)
    running = threading.Event()
    release = threading.Event()

    async def hold(x: int) -> int:
        running.set()
        await anyio.to_thread.run_sync(release.wait)
        return x

    async def echo(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x

    outcome: list[Any] = []

    def first_loop() -> None:
        outcome.append(anyio.run(fan.map, hold, [1, 2], backend=first[1], backend_options=first[2]))

    thread = threading.Thread(target=first_loop)
    thread.start()
    try:
        assert running.wait(GUARD)
        with pytest.raises(RuntimeError, match=r"another event loop.*anyfan\.blocking\.Fan"):
            anyio.run(guarded, fan.map(echo, [3]), backend=second[1], backend_options=second[2])
    finally:
        release.set()
        thread.join(GUARD)
    assert outcome == [[1, 2]]
    # Successive loops keep working, on either backend.
    assert anyio.run(fan.map, echo, [4, 5], backend=second[1], backend_options=second[2]) == [4, 5]
    assert fan.in_flight == 0
