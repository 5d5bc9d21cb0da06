"""Module-level ``map``, ``gather`` and ``stream``: a fresh `Fan` for each call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, TypeVar, overload

from ._engine import Outcomes
from ._fan import Fan, Items, close_unstarted
from ._hooks import OnPause, OnRetry
from ._options import DEFAULT_CONCURRENCY, ErrorPolicy, check_concurrency
from ._progress import Observer
from ._retry import Retry

T = TypeVar("T")
R = TypeVar("R")


@overload
async def map(
    fn: Callable[[T], Awaitable[R]],
    items: Items[T],
    *,
    concurrency: int = ...,
    timeout: float | None = ...,
    deadline: float | None = ...,
    limits: Iterable[Any] = ...,
    retry: Retry | None = ...,
    progress: bool | str = ...,
    on_outcome: Observer | None = ...,
    on_retry: OnRetry | None = ...,
    on_pause: OnPause | None = ...,
    errors: Literal["raise", "collect"] = ...,
) -> list[R]: ...


@overload
async def map(
    fn: Callable[[T], Awaitable[R]],
    items: Items[T],
    *,
    concurrency: int = ...,
    timeout: float | None = ...,
    deadline: float | None = ...,
    limits: Iterable[Any] = ...,
    retry: Retry | None = ...,
    progress: bool | str = ...,
    on_outcome: Observer | None = ...,
    on_retry: OnRetry | None = ...,
    on_pause: OnPause | None = ...,
    errors: Literal["return"],
) -> list[R | Exception]: ...


@overload
async def map(
    fn: Callable[[T], R],
    items: Items[T],
    *,
    concurrency: int = ...,
    timeout: float | None = ...,
    deadline: float | None = ...,
    limits: Iterable[Any] = ...,
    retry: Retry | None = ...,
    progress: bool | str = ...,
    on_outcome: Observer | None = ...,
    on_retry: OnRetry | None = ...,
    on_pause: OnPause | None = ...,
    errors: Literal["raise", "collect"] = ...,
) -> list[R]: ...


@overload
async def map(
    fn: Callable[[T], R],
    items: Items[T],
    *,
    concurrency: int = ...,
    timeout: float | None = ...,
    deadline: float | None = ...,
    limits: Iterable[Any] = ...,
    retry: Retry | None = ...,
    progress: bool | str = ...,
    on_outcome: Observer | None = ...,
    on_retry: OnRetry | None = ...,
    on_pause: OnPause | None = ...,
    errors: Literal["return"],
) -> list[R | Exception]: ...


async def map(
    fn: Callable[[T], Any],
    items: Items[T],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float | None = None,
    deadline: float | None = None,
    limits: Iterable[Any] = (),
    retry: Retry | None = None,
    progress: bool | str = False,
    on_outcome: Observer | None = None,
    on_retry: OnRetry | None = None,
    on_pause: OnPause | None = None,
    errors: ErrorPolicy = "raise",
) -> list[Any]:
    """Call ``fn`` on every item, at most ``concurrency`` at a time; return results in input order.

    The one-shot form of `Fan.map`; see there for the options, and `Fan` for
    ``on_retry`` and ``on_pause``.
    """
    fan = Fan(
        concurrency,
        timeout=timeout,
        errors=errors,
        limits=limits,
        retry=retry,
        on_retry=on_retry,
        on_pause=on_pause,
    )
    return await fan.map(fn, items, deadline=deadline, progress=progress, on_outcome=on_outcome)


async def gather(
    *awaitables: Awaitable[Any],
    concurrency: int | None = None,
    errors: ErrorPolicy = "raise",
) -> list[Any]:
    """Await every awaitable, at most ``concurrency`` at a time (``None``: all at once).

    `asyncio.gather` made structured and limited, on any backend; see `Fan.gather`.
    """
    if concurrency is None:
        concurrency = max(1, len(awaitables))
    try:
        fan = Fan(check_concurrency(concurrency), errors=errors)
    except BaseException:
        close_unstarted(awaitables)
        raise
    return await fan.gather(*awaitables)


@overload
def stream(
    fn: Callable[[T], Awaitable[R]],
    items: Items[T],
    *,
    ordered: bool = ...,
    concurrency: int = ...,
    timeout: float | None = ...,
    deadline: float | None = ...,
    limits: Iterable[Any] = ...,
    retry: Retry | None = ...,
    progress: bool | str = ...,
    on_outcome: Observer | None = ...,
    on_retry: OnRetry | None = ...,
    on_pause: OnPause | None = ...,
) -> AbstractAsyncContextManager[Outcomes[T, R]]: ...


@overload
def stream(
    fn: Callable[[T], R],
    items: Items[T],
    *,
    ordered: bool = ...,
    concurrency: int = ...,
    timeout: float | None = ...,
    deadline: float | None = ...,
    limits: Iterable[Any] = ...,
    retry: Retry | None = ...,
    progress: bool | str = ...,
    on_outcome: Observer | None = ...,
    on_retry: OnRetry | None = ...,
    on_pause: OnPause | None = ...,
) -> AbstractAsyncContextManager[Outcomes[T, R]]: ...


def stream(
    fn: Callable[[T], Any],
    items: Items[T],
    *,
    ordered: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float | None = None,
    deadline: float | None = None,
    limits: Iterable[Any] = (),
    retry: Retry | None = None,
    progress: bool | str = False,
    on_outcome: Observer | None = None,
    on_retry: OnRetry | None = None,
    on_pause: OnPause | None = None,
) -> AbstractAsyncContextManager[Outcomes[T, Any]]:
    """Yield an `Outcome` per item as calls finish (or in input order with ``ordered=True``).

    The one-shot form of `Fan.stream`; see there for the options, and `Fan`
    for ``on_retry`` and ``on_pause``.
    """
    fan = Fan(
        concurrency,
        timeout=timeout,
        limits=limits,
        retry=retry,
        on_retry=on_retry,
        on_pause=on_pause,
    )
    return fan.stream(
        fn, items, ordered=ordered, deadline=deadline, progress=progress, on_outcome=on_outcome
    )
