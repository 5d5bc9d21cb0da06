"""Module-level ``map``, ``gather`` and ``stream``: a fresh `Fan` for each call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, TypeVar, Unpack, overload

from ._engine import Outcomes
from ._fan import Items, close_unstarted, one_shot
from ._hooks import OnPause, OnRetry
from ._options import (
    DEFAULT_CONCURRENCY,
    ErrorPolicy,
    MapOptions,
    StreamOptions,
    check_concurrency,
)
from ._progress import Observer, Progress
from ._retry import Retry

T = TypeVar("T")
R = TypeVar("R")


@overload
async def map(
    fn: Callable[[T], Awaitable[R]],
    items: Items[T],
    *,
    errors: Literal["raise", "collect"] = ...,
    on_retry: OnRetry | None = ...,
    on_pause: OnPause | None = ...,
    **options: Unpack[MapOptions],
) -> list[R]: ...


@overload
async def map(
    fn: Callable[[T], Awaitable[R]],
    items: Items[T],
    *,
    errors: Literal["return"],
    on_retry: OnRetry | None = ...,
    on_pause: OnPause | None = ...,
    **options: Unpack[MapOptions],
) -> list[R | Exception]: ...


@overload
async def map(
    fn: Callable[[T], R],
    items: Items[T],
    *,
    errors: Literal["raise", "collect"] = ...,
    on_retry: OnRetry | None = ...,
    on_pause: OnPause | None = ...,
    **options: Unpack[MapOptions],
) -> list[R]: ...


@overload
async def map(
    fn: Callable[[T], R],
    items: Items[T],
    *,
    errors: Literal["return"],
    on_retry: OnRetry | None = ...,
    on_pause: OnPause | None = ...,
    **options: Unpack[MapOptions],
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
    progress: Progress = False,
    on_outcome: Observer | None = None,
    on_retry: OnRetry | None = None,
    on_pause: OnPause | None = None,
    errors: ErrorPolicy = "raise",
) -> list[Any]:
    """Call ``fn`` on every item, at most ``concurrency`` at a time; return results in input order.

    The one-shot form of `Fan.map`: ``fn`` may be async, or a plain function,
    which then runs in worker threads. Items are pulled lazily, so ``items``
    may be an endless iterable or an async iterable.

    Args:
        fn: Called once per item: ``fn(item)``.
        items: The inputs, an iterable or an async iterable.
        concurrency: Most calls in flight at once.
        timeout: Seconds each call may take before it fails with `TimeoutError`;
            ``None`` for no limit.
        deadline: Seconds the whole map may take before it raises
            `DeadlineExceeded` (holding the results finished so far); ``None``
            for no limit.
        limits: `Rate` limits every call must pass.
        retry: A `Retry` policy for failed calls; ``None`` for no retries.
        progress: ``True`` (or a label) to draw a tqdm progress bar.
        on_outcome: Called with each item's `Outcome` as it finishes.
        on_retry: Called with a `RetryEvent` before each retry waits.
        on_pause: Called with a `PauseEvent` when a server's delay starts or
            extends the shared pause.
        errors: ``"raise"`` (the first failure cancels the rest and raises a
            `FanError`), ``"collect"`` (every item runs, then one `FanError`
            holds all failures) or ``"return"`` (failures take their item's
            place in the list).

    Returns:
        One result per item, in input order.

    Raises:
        FanError: If a call failed and ``errors`` is ``"raise"`` or ``"collect"``.
        DeadlineExceeded: If ``deadline`` passed first.
    """
    fan = one_shot(
        concurrency,
        timeout=timeout,
        errors=errors,
        limits=limits,
        retry=retry,
        on_retry=on_retry,
        on_pause=on_pause,
    )
    return await fan.map(fn, items, deadline=deadline, progress=progress, on_outcome=on_outcome)


@overload
async def gather(
    *awaitables: Awaitable[R],
    concurrency: int | None = ...,
    errors: Literal["raise", "collect"] = ...,
) -> list[R]: ...


@overload
async def gather(
    *awaitables: Awaitable[R],
    concurrency: int | None = ...,
    errors: Literal["return"],
) -> list[R | Exception]: ...


async def gather(
    *awaitables: Awaitable[Any],
    concurrency: int | None = None,
    errors: ErrorPolicy = "raise",
) -> list[Any]:
    """Await every awaitable, at most ``concurrency`` at a time; return results in order.

    `asyncio.gather` made structured and limited, on any backend: with
    ``errors="raise"`` the first failure cancels the rest, and coroutines
    that never started are closed, so none warns that it was never awaited.

    Args:
        *awaitables: What to await; results come back in this order.
        concurrency: Most awaited at once; ``None`` for all at once.
        errors: ``"raise"``, ``"collect"`` or ``"return"``, as for `map`.

    Returns:
        One result per awaitable, in the order given.
    """
    if concurrency is None:
        concurrency = max(1, len(awaitables))
    try:
        fan = one_shot(check_concurrency(concurrency), errors=errors)
    except BaseException:
        close_unstarted(awaitables)
        raise
    return await fan.gather(*awaitables)


@overload
def stream(
    fn: Callable[[T], Awaitable[R]],
    items: Items[T],
    *,
    on_retry: OnRetry | None = ...,
    on_pause: OnPause | None = ...,
    **options: Unpack[StreamOptions],
) -> AbstractAsyncContextManager[Outcomes[T, R]]: ...


@overload
def stream(
    fn: Callable[[T], R],
    items: Items[T],
    *,
    on_retry: OnRetry | None = ...,
    on_pause: OnPause | None = ...,
    **options: Unpack[StreamOptions],
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
    progress: Progress = False,
    on_outcome: Observer | None = None,
    on_retry: OnRetry | None = None,
    on_pause: OnPause | None = None,
) -> AbstractAsyncContextManager[Outcomes[T, Any]]:
    """Yield an `Outcome` per item as calls finish (or in input order with ``ordered=True``).

    The one-shot form of `Fan.stream`: ``async with anyfan.stream(fn, items)
    as outcomes: async for outcome in outcomes: ...``. A failure arrives as an
    outcome with ``error`` set and does not stop the stream; leaving the block
    early cancels the calls still in flight.

    Args:
        fn: Called once per item: ``fn(item)``.
        items: The inputs, an iterable or an async iterable.
        ordered: Yield outcomes in input order instead of as they finish.
        concurrency: Most calls in flight at once.
        timeout: Seconds each call may take; ``None`` for no limit.
        deadline: Seconds the whole stream may take before it raises
            `DeadlineExceeded`; ``None`` for no limit.
        limits: `Rate` limits every call must pass.
        retry: A `Retry` policy for failed calls; ``None`` for no retries.
        progress: ``True`` (or a label) to draw a tqdm progress bar.
        on_outcome: Called with each item's `Outcome` as it finishes.
        on_retry: Called with a `RetryEvent` before each retry waits.
        on_pause: Called with a `PauseEvent` when a server's delay starts or
            extends the shared pause.
    """
    fan = one_shot(
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
