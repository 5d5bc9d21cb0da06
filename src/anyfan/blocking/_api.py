"""Module-level blocking ``map``, ``gather`` and ``stream``, on the process-wide default loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from .._core import DEFAULT_CONCURRENCY, close_unstarted
from .._core import gather as async_gather
from .._core import map as async_map
from .._core import stream as async_stream
from ._fan import stream_capacity
from ._loop import Backend, Loop, resolve_loop
from ._stream import Outcomes

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .._core import Items

T = TypeVar("T")
R = TypeVar("R")


@overload
def map(
    fn: Callable[[T], Awaitable[R]],
    items: Items[T],
    *,
    errors: Literal["raise", "collect"] = ...,
    backend: Backend | None = ...,
    loop: Loop | None = ...,
    **options: Any,
) -> list[R]: ...


@overload
def map(
    fn: Callable[[T], Awaitable[R]],
    items: Items[T],
    *,
    errors: Literal["return"],
    backend: Backend | None = ...,
    loop: Loop | None = ...,
    **options: Any,
) -> list[R | Exception]: ...


@overload
def map(
    fn: Callable[[T], R],
    items: Items[T],
    *,
    errors: Literal["raise", "collect"] = ...,
    backend: Backend | None = ...,
    loop: Loop | None = ...,
    **options: Any,
) -> list[R]: ...


@overload
def map(
    fn: Callable[[T], R],
    items: Items[T],
    *,
    errors: Literal["return"],
    backend: Backend | None = ...,
    loop: Loop | None = ...,
    **options: Any,
) -> list[R | Exception]: ...


def map(
    fn: Callable[[T], Any],
    items: Items[T],
    *,
    backend: Backend | None = None,
    loop: Loop | None = None,
    **options: Any,
) -> list[Any]:
    """Call ``fn`` on every item, at most ``concurrency`` at a time; return results in input order.

    The blocking form of `anyfan.map`, with the same options. It runs on
    `default_loop` for ``backend`` (``"asyncio"`` unless given), or on
    ``loop``.
    """
    target, _ = resolve_loop(backend, None, loop, private=False)
    return target.call(async_map, fn, items, **options)


def gather(
    *awaitables: Awaitable[Any],
    backend: Backend | None = None,
    loop: Loop | None = None,
    **options: Any,
) -> list[Any]:
    """Await every awaitable, at most ``concurrency`` at a time; return results in order.

    The blocking form of `anyfan.gather`, with the same options; see `map`
    for ``backend`` and ``loop``.
    """
    try:
        target, _ = resolve_loop(backend, None, loop, private=False)
        return target.call(async_gather, *awaitables, **options)
    except BaseException:
        close_unstarted(awaitables)
        raise


@overload
def stream(
    fn: Callable[[T], Awaitable[R]],
    items: Items[T],
    *,
    backend: Backend | None = ...,
    loop: Loop | None = ...,
    **options: Any,
) -> Outcomes[T, R]: ...


@overload
def stream(
    fn: Callable[[T], R],
    items: Items[T],
    *,
    backend: Backend | None = ...,
    loop: Loop | None = ...,
    **options: Any,
) -> Outcomes[T, R]: ...


def stream(
    fn: Callable[[T], Any],
    items: Items[T],
    *,
    backend: Backend | None = None,
    loop: Loop | None = None,
    **options: Any,
) -> Outcomes[T, Any]:
    """Return a plain iterator of `anyfan.Outcome`, one per item, as calls finish.

    The blocking form of `anyfan.stream`, with the same options (``ordered=True``
    for input order); see `map` for ``backend`` and ``loop``. Leaving it early
    (``break``, ``close()``, garbage collection) cancels the outstanding work.
    """
    target, _ = resolve_loop(backend, None, loop, private=False)
    return Outcomes(
        target,
        lambda: async_stream(fn, items, **options),
        capacity=stream_capacity(options, DEFAULT_CONCURRENCY),
    )
