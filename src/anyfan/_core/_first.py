"""`first`: the first call to succeed wins; the rest are cancelled."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar, overload

import anyio

from ._errors import DeadlineExceeded, FanError
from ._fan import Fan, Items
from ._hooks import OnPause, OnRetry
from ._options import DEFAULT_CONCURRENCY
from ._retry import Retry

T = TypeVar("T")
R = TypeVar("R")


@overload
async def first(
    fn: Callable[[T], Awaitable[R]],
    items: Items[T],
    *,
    concurrency: int = ...,
    timeout: float | None = ...,
    deadline: float | None = ...,
    limits: Iterable[Any] = ...,
    retry: Retry | None = ...,
    on_retry: OnRetry | None = ...,
    on_pause: OnPause | None = ...,
) -> R: ...


@overload
async def first(
    fn: Callable[[T], R],
    items: Items[T],
    *,
    concurrency: int = ...,
    timeout: float | None = ...,
    deadline: float | None = ...,
    limits: Iterable[Any] = ...,
    retry: Retry | None = ...,
    on_retry: OnRetry | None = ...,
    on_pause: OnPause | None = ...,
) -> R: ...


async def first(
    fn: Callable[[T], Any],
    items: Items[T],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float | None = None,
    deadline: float | None = None,
    limits: Iterable[Any] = (),
    retry: Retry | None = None,
    on_retry: OnRetry | None = None,
    on_pause: OnPause | None = None,
) -> Any:
    """Call ``fn`` on the items until one succeeds; return that value and cancel the rest.

    Up to ``concurrency`` calls race at once (by default every item, up to
    32); when one fails the next item starts. Once one succeeds, no further
    item is taken from the input and the calls still running or waiting
    for their turn are cancelled. Use it to hedge a request across
    providers, replicas or models. The other options are those of `map`.

    Raises:
        FanError: Of every failure, in input order, if no call succeeded.
        DeadlineExceeded: If ``deadline`` passed first (``completed`` holds the
            failures so far, by index).
        ValueError: If there are no items at all.
    """
    fan = Fan(
        concurrency,
        timeout=timeout,
        limits=limits,
        retry=retry,
        on_retry=on_retry,
        on_pause=on_pause,
    )
    race = _Race(fan, fn, items)
    with anyio.move_on_after(math.inf if deadline is None else deadline) as scope:
        await race.run(concurrency)
    if race.won:
        return race.value
    failures = sorted(race.failures, key=lambda pair: pair[0])
    if scope.cancelled_caught:
        assert deadline is not None
        raise DeadlineExceeded(deadline, dict(failures))
    if not failures:
        raise ValueError("first() needs at least one item")
    count = len(failures)
    raise FanError(
        f"all {count} {'call' if count == 1 else 'calls'} failed",
        [error for _, error in failures],
        indices=[index for index, _ in failures],
    )


class _Race:
    """Workers pull items one at a time and call; the first success stops them all.

    No item is taken from the input once a call has succeeded, so no new
    paid request is sent just to be thrown away.
    """

    def __init__(self, fan: Fan, fn: Callable[[Any], Any], items: Items[Any]) -> None:
        self._fan = fan
        self._fn = fn
        self._items = items
        self._next = 0
        self._lock = anyio.Lock()
        self.failures: list[tuple[int, Exception]] = []
        self.won = False
        self.value: Any = None

    async def run(self, width: int) -> None:
        items: Any = self._items
        if hasattr(items, "__aiter__"):
            source = aiter(items)
            try:
                await self._workers(width, self._async_puller(source))
            finally:
                if source is not items and hasattr(source, "aclose"):
                    with anyio.CancelScope(shield=True):
                        await source.aclose()
        else:
            await self._workers(width, self._sync_puller(iter(items)))

    def _sync_puller(self, source: Iterator[Any]) -> Callable[[], Awaitable[Any]]:
        async def pull() -> Any:
            return next(source, _DONE)

        return pull

    def _async_puller(self, source: AsyncIterator[Any]) -> Callable[[], Awaitable[Any]]:
        async def pull() -> Any:
            async with self._lock:
                return await anext(source, _DONE)

        return pull

    async def _workers(self, width: int, pull: Callable[[], Awaitable[Any]]) -> None:
        fatal: list[BaseException] = []
        async with anyio.create_task_group() as tg:

            async def worker() -> None:
                while True:
                    try:
                        item = await pull()
                    except Exception as exc:  # the input itself failed
                        fatal.append(exc)
                        tg.cancel_scope.cancel()
                        return
                    if item is _DONE or self.won:
                        return
                    index = self._next
                    self._next += 1
                    try:
                        value = await self._fan.call(self._fn, item)
                    except Exception as exc:
                        self.failures.append((index, exc))
                        continue
                    # Two calls can finish in the same loop iteration; the first one wins.
                    if not self.won:  # pragma: no branch
                        self.won, self.value = True, value
                        tg.cancel_scope.cancel()
                    return

            for _ in range(width):
                tg.start_soon(worker)
        if fatal:
            raise fatal[0]


_DONE: Any = object()
