"""`Fan.group`: a task group whose tasks each make one call under the Fan's shared limits."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

from ._errors import FanError

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from ._fan import Fan


class Group:
    """Start calls in the background; the block waits for them all (see `Fan.group`).

    Each started call waits for a slot like any other caller of the Fan, so
    starting thousands costs a small task each but never exceeds the limits.
    The first failure cancels the others, and leaving the block raises a
    `FanError` of every failure, indexed in the order the calls were started.
    """

    __slots__ = ("_closed", "_failures", "_fan", "_started", "_tg")

    def __init__(self, fan: Fan, tg: TaskGroup) -> None:
        self._fan = fan
        self._tg = tg
        self._started = 0
        self._failures: list[tuple[int, Exception]] = []
        self._closed = False

    @property
    def started(self) -> int:
        """How many calls were started in this group."""
        return self._started

    def start_soon(self, fn: Callable[[Any], Any], item: Any, **options: Any) -> None:
        """Start ``fan.call(fn, item, **options)`` in the background and return at once.

        Raises:
            RuntimeError: If the group's block has been left.
            TypeError, ValueError: If an option is invalid.
        """
        if self._closed:
            raise RuntimeError("this group is closed: start calls inside its `async with` block")
        call = self._fan.wrap(fn, **options) if options else functools.partial(self._fan.call, fn)
        index = self._started
        self._started += 1
        self._tg.start_soon(self._run, call, item, index)

    async def _run(self, call: Callable[[Any], Any], item: Any, index: int) -> None:
        try:
            await call(item)
        except Exception as exc:
            exc.add_note(f"anyfan: raised by the call started #{index} in the group")
            self._failures.append((index, exc))
            self._tg.cancel_scope.cancel()

    def _outcome(self) -> None:
        if not self._failures:
            return
        failures = sorted(self._failures, key=lambda pair: pair[0])
        count = len(failures)
        raise FanError(
            f"{count} {'call' if count == 1 else 'calls'} failed in the group",
            [error for _, error in failures],
            indices=[index for index, _ in failures],
        )


@asynccontextmanager
async def group(fan: Fan) -> AsyncIterator[Group]:
    """The body of `Fan.group`."""
    body_error: BaseException | None = None
    async with anyio.create_task_group() as tg:
        started = Group(fan, tg)
        try:
            yield started
        except BaseException as exc:
            # Re-raised below, unwrapped (a task group would wrap it in a group).
            body_error = exc
            tg.cancel_scope.cancel()
        finally:
            started._closed = True
    if body_error is not None and not (
        started._failures and isinstance(body_error, anyio.get_cancelled_exc_class())
    ):
        raise body_error
    started._outcome()
