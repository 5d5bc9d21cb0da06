"""`Slots`: the FIFO counter of call slots a Fan's runs share."""

from __future__ import annotations

import asyncio

import anyio
import anyio.lowlevel
import pytest

from anyfan._core._slots import Slots
from strategies import CLOCKED_BACKEND_IDS, clocked_backend

pytestmark = pytest.mark.anyio


async def wait_until(condition: object, *, steps: int = 1000) -> None:
    """Let other tasks run until ``condition()`` holds (bounded, no clock involved)."""
    for _ in range(steps):
        if condition():  # type: ignore[operator]
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError("condition never held")


async def test_uncontended_acquire_and_release() -> None:
    slots = Slots(2)
    assert (slots.total, slots.in_use, slots.waiting) == (2, 0, 0)
    await slots.acquire()
    await slots.acquire()
    assert slots.in_use == 2
    slots.release()
    assert slots.in_use == 1
    slots.release()
    assert slots.in_use == 0


async def test_waiters_are_served_in_arrival_order() -> None:
    slots = Slots(1)
    await slots.acquire()
    granted: list[int] = []

    async def taker(n: int) -> None:
        await slots.acquire()
        granted.append(n)
        slots.release()

    async with anyio.create_task_group() as tg:
        for n in range(5):
            tg.start_soon(taker, n)
            await wait_until(lambda n=n: slots.waiting == n + 1)
        slots.release()
    assert granted == [0, 1, 2, 3, 4]
    assert (slots.in_use, slots.waiting) == (0, 0)


async def test_a_freed_slot_goes_to_the_waiter_not_a_newcomer() -> None:
    slots = Slots(1)
    await slots.acquire()
    order: list[str] = []

    async def taker(name: str) -> None:
        await slots.acquire()
        order.append(name)
        slots.release()

    async with anyio.create_task_group() as tg:
        tg.start_soon(taker, "waiter")
        await wait_until(lambda: slots.waiting == 1)
        slots.release()
        # The slot now belongs to the waiter even though it has not run yet.
        assert slots.in_use == 1
        assert slots.waiting == 0
        tg.start_soon(taker, "newcomer")
    assert order == ["waiter", "newcomer"]
    assert slots.in_use == 0


async def test_cancelled_waiter_leaves_the_queue() -> None:
    slots = Slots(1)
    await slots.acquire()
    granted: list[str] = []

    async def taker(name: str) -> None:
        await slots.acquire()
        granted.append(name)
        slots.release()

    scope = anyio.CancelScope()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_cancellable, slots, scope)
        await wait_until(lambda: slots.waiting == 1)
        tg.start_soon(taker, "second")
        await wait_until(lambda: slots.waiting == 2)
        scope.cancel()
        await wait_until(lambda: slots.waiting == 1)
        slots.release()
    assert granted == ["second"]
    assert (slots.in_use, slots.waiting) == (0, 0)


async def _cancellable(slots: Slots, scope: anyio.CancelScope) -> None:
    with scope:
        await slots.acquire()
        try:
            await anyio.sleep_forever()
        finally:
            slots.release()


async def test_cancel_right_after_grant_loses_no_slot() -> None:
    # Whichever way the race goes (cancelled in acquire, or at the next
    # checkpoint while holding the slot), the slot is not lost.
    slots = Slots(1)
    await slots.acquire()
    scope = anyio.CancelScope()
    granted: list[str] = []

    async def taker() -> None:
        await slots.acquire()
        granted.append("next")
        slots.release()

    async with anyio.create_task_group() as tg:
        tg.start_soon(_cancellable, slots, scope)
        await wait_until(lambda: slots.waiting == 1)
        tg.start_soon(taker)
        await wait_until(lambda: slots.waiting == 2)
        slots.release()
        scope.cancel()
    assert granted == ["next"]
    assert (slots.in_use, slots.waiting) == (0, 0)


@pytest.mark.parametrize(
    "anyio_backend",
    [
        pytest.param(clocked_backend(name), id=name)
        for name in CLOCKED_BACKEND_IDS
        if name.startswith("asyncio")
    ],
)
async def test_waiter_cancelled_after_being_granted_passes_the_slot_on() -> None:
    # Only asyncio can cancel a task whose wait has already been satisfied
    # (Task.cancel() between the wake-up and the resumption).
    slots = Slots(1)
    await slots.acquire()
    first = asyncio.ensure_future(slots.acquire())
    second = asyncio.ensure_future(slots.acquire())
    await wait_until(lambda: slots.waiting == 2)
    slots.release()  # granted to `first`...
    first.cancel()  # ...which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await first
    await second  # the slot went on to the next waiter
    assert (slots.in_use, slots.waiting) == (1, 0)
    slots.release()
    assert slots.in_use == 0
