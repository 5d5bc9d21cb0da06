"""Module-level blocking ``map``, ``gather`` and ``stream``, on the process-wide default loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeVar, Unpack, overload

from .._core import DEFAULT_CONCURRENCY, close_unstarted
from .._core import gather as async_gather
from .._core import map as async_map
from .._core import stream as async_stream
from ._fan import stream_capacity
from ._loop import Backend, Loop, resolve_loop
from ._stream import Outcomes

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .._core import ErrorPolicy, Items, MapOptions, StreamOptions

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
    **options: Unpack[MapOptions],
) -> list[R]: ...


@overload
def map(
    fn: Callable[[T], Awaitable[R]],
    items: Items[T],
    *,
    errors: Literal["return"],
    backend: Backend | None = ...,
    loop: Loop | None = ...,
    **options: Unpack[MapOptions],
) -> list[R | Exception]: ...


@overload
def map(
    fn: Callable[[T], R],
    items: Items[T],
    *,
    errors: Literal["raise", "collect"] = ...,
    backend: Backend | None = ...,
    loop: Loop | None = ...,
    **options: Unpack[MapOptions],
) -> list[R]: ...


@overload
def map(
    fn: Callable[[T], R],
    items: Items[T],
    *,
    errors: Literal["return"],
    backend: Backend | None = ...,
    loop: Loop | None = ...,
    **options: Unpack[MapOptions],
) -> list[R | Exception]: ...


def map(
    fn: Callable[[T], Any],
    items: Items[T],
    *,
    errors: ErrorPolicy = "raise",
    backend: Backend | None = None,
    loop: Loop | None = None,
    **options: Unpack[MapOptions],
) -> list[Any]:
    """Call ``fn`` on every item, at most ``concurrency`` at a time; return results in input order.

    The blocking form of `anyfan.map`, with the same options. It runs on
    `default_loop` for ``backend`` (``"asyncio"`` unless given), or on
    ``loop``.

    Args:
        fn: Called once per item: ``fn(item)``; async or plain.
        items: The inputs, an iterable or an async iterable.
        errors: ``"raise"``, ``"collect"`` or ``"return"``, as for `anyfan.map`.
        backend: ``"asyncio"`` or ``"trio"``: whose default loop to run on.
        loop: Run on this `Loop` instead.
        **options: Any of `anyfan.MapOptions`: ``concurrency``, ``timeout``,
            ``deadline``, ``limits``, ``retry``, ``progress``, ``on_outcome``.
    """
    target, _ = resolve_loop(backend, None, loop, private=False)
    return target.call(async_map, fn, items, errors=errors, **options)


@overload
def gather(
    *awaitables: Awaitable[R],
    concurrency: int | None = ...,
    errors: Literal["raise", "collect"] = ...,
    backend: Backend | None = ...,
    loop: Loop | None = ...,
) -> list[R]: ...


@overload
def gather(
    *awaitables: Awaitable[R],
    concurrency: int | None = ...,
    errors: Literal["return"],
    backend: Backend | None = ...,
    loop: Loop | None = ...,
) -> list[R | Exception]: ...


def gather(
    *awaitables: Awaitable[Any],
    concurrency: int | None = None,
    errors: ErrorPolicy = "raise",
    backend: Backend | None = None,
    loop: Loop | None = None,
) -> list[Any]:
    """Await every awaitable, at most ``concurrency`` at a time; return results in order.

    The blocking form of `anyfan.gather`, with the same options; see `map`
    for ``backend`` and ``loop``.
    """
    try:
        target, _ = resolve_loop(backend, None, loop, private=False)
        return target.call(async_gather, *awaitables, concurrency=concurrency, errors=errors)
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
    **options: Unpack[StreamOptions],
) -> Outcomes[T, R]: ...


@overload
def stream(
    fn: Callable[[T], R],
    items: Items[T],
    *,
    backend: Backend | None = ...,
    loop: Loop | None = ...,
    **options: Unpack[StreamOptions],
) -> Outcomes[T, R]: ...


def stream(
    fn: Callable[[T], Any],
    items: Items[T],
    *,
    backend: Backend | None = None,
    loop: Loop | None = None,
    **options: Unpack[StreamOptions],
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
