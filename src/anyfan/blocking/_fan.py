"""`Fan`: the blocking twin of `anyfan.Fan`, running on an event loop in a background thread."""

from __future__ import annotations

import functools
import weakref
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Unpack, overload

from .._core import (
    DEFAULT_CONCURRENCY,
    ErrorPolicy,
    FanOptions,
    FanStats,
    Items,
    MapOptions,
    StreamOptions,
    check_callable,
    close_unstarted,
)
from .._core import Fan as AsyncFan
from ._loop import Backend, Loop, resolve_loop
from ._stream import Outcomes

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

T = TypeVar("T")
R = TypeVar("R")


def stream_capacity(options: Mapping[str, object], default: int) -> int:
    """How many outcomes a blocking stream buffers: its concurrency, when valid."""
    value = options.get("concurrency")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return default


class Fan:
    """The blocking twin of `anyfan.Fan`: the same methods, called from plain sync code.

    Calls from every thread share one set of limits: 32 threads calling one
    Fan together never have more than ``concurrency`` calls in flight. The
    calls run on the Fan's own event loop, in a background thread started on
    first use; async functions run on that loop, sync ones in worker threads.
    Use the Fan as a context manager, or call `close`, to stop that thread
    (it is also stopped when the Fan is garbage collected, or at exit).

    Args:
        concurrency: Most calls in flight at once, across all threads.
        backend: ``"asyncio"`` (the default) or ``"trio"``, for the Fan's loop.
        backend_options: Passed to `anyio.run`, e.g. ``{"use_uvloop": True}``.
        loop: Run on this shared `Loop` (say `default_loop()`) instead of an own one.
        **options: Any of `anyfan.FanOptions`: ``timeout``, ``errors``, ``limits``, ``retry``.
    """

    def __init__(
        self,
        concurrency: int = DEFAULT_CONCURRENCY,
        *,
        backend: Backend | None = None,
        backend_options: Mapping[str, Any] | None = None,
        loop: Loop | None = None,
        **options: Unpack[FanOptions],
    ) -> None:
        self._fan = AsyncFan(concurrency, **options)
        self._loop, owned = resolve_loop(backend, backend_options, loop, private=True)
        self._closed = False
        self._finalizer: weakref.finalize[Any, Any] | None = None
        if owned:
            # Never join here: collection can happen on any thread, even the loop's.
            self._finalizer = weakref.finalize(self, self._loop._close, join=False)
            self._finalizer.atexit = False

    def __repr__(self) -> str:
        return f"<blocking {self._fan!r} on {self._loop!r}>"

    def __enter__(self) -> Fan:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def concurrency(self) -> int:
        """Most calls in flight at once."""
        return self._fan.concurrency

    @property
    def in_flight(self) -> int:
        """Calls running right now, across every thread using this Fan."""
        return self._fan.in_flight

    @property
    def stats(self) -> FanStats:
        """A snapshot of this Fan's activity (see `anyfan.Fan.stats`), read on its loop."""

        async def read() -> FanStats:
            return self._fan.stats

        return self._loop.call(read)

    @property
    def async_fan(self) -> AsyncFan:
        """The `anyfan.Fan` doing the work, whose limits (and ``stats``) this Fan shares.

        Await its methods from async code running on `loop` to draw from the
        same limits as the blocking calls.
        """
        return self._fan

    @property
    def loop(self) -> Loop:
        """The event loop the Fan's calls run on."""
        return self._loop

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    def close(self) -> None:
        """Refuse new calls; if the Fan has a loop of its own, stop it, cancelling what runs."""
        self._closed = True
        if self._finalizer is not None and self._finalizer.detach() is not None:
            self._loop.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")

    @overload
    def call(self, fn: Callable[[T], Awaitable[R]], item: T, **options: Any) -> R: ...

    @overload
    def call(self, fn: Callable[[T], R], item: T, **options: Any) -> R: ...

    def call(self, fn: Callable[[T], Any], item: T, **options: Any) -> Any:
        """Call ``fn(item)`` once under the Fan's limits; return its value or raise its error.

        Blocks until done. Threads calling one Fan share its slots, rate
        limits, shared pause and retry budget. Takes the options of
        `anyfan.Fan.call` (``timeout``, ``limits``, ``retry``, ``on_outcome``);
        hooks run on the Fan's loop thread. Async ``fn`` runs on that loop,
        sync ``fn`` in its worker threads. The call's own final exception is
        raised, never a `FanError`.
        """
        self._check_open()
        return self._loop.call(self._fan.call, fn, item, **options)

    @overload
    def wrap(self, fn: Callable[[T], Awaitable[R]], **options: Any) -> Callable[[T], R]: ...

    @overload
    def wrap(self, fn: Callable[[T], R], **options: Any) -> Callable[[T], R]: ...

    def wrap(self, fn: Callable[[T], Any], **options: Any) -> Callable[[T], Any]:
        """Return a plain function ``f(item)`` that makes `call` ``(fn, item)``; also a decorator.

        Takes the options of `call`, fixed for every call of ``f``.
        """
        self._fan.wrap(fn, **options)  # reject bad options now

        @functools.wraps(fn)
        def through_fan(item: T) -> Any:
            return self.call(fn, item, **options)

        return through_fan

    @overload
    def map(
        self,
        fn: Callable[[T], Awaitable[R]],
        items: Items[T],
        *,
        errors: Literal["raise", "collect"] | None = ...,
        **options: Unpack[MapOptions],
    ) -> list[R]: ...

    @overload
    def map(
        self,
        fn: Callable[[T], Awaitable[R]],
        items: Items[T],
        *,
        errors: Literal["return"],
        **options: Unpack[MapOptions],
    ) -> list[R | Exception]: ...

    @overload
    def map(
        self,
        fn: Callable[[T], R],
        items: Items[T],
        *,
        errors: Literal["raise", "collect"] | None = ...,
        **options: Unpack[MapOptions],
    ) -> list[R]: ...

    @overload
    def map(
        self,
        fn: Callable[[T], R],
        items: Items[T],
        *,
        errors: Literal["return"],
        **options: Unpack[MapOptions],
    ) -> list[R | Exception]: ...

    def map(
        self,
        fn: Callable[[T], Any],
        items: Items[T],
        *,
        errors: ErrorPolicy | None = None,
        **options: Unpack[MapOptions],
    ) -> list[Any]:
        """Call ``fn`` on every item and return the results in input order.

        Blocks until done. Takes the per-call options of `anyfan.Fan.map`
        (``concurrency``, ``timeout``, ``deadline``, ``errors``, ...). Items
        are pulled lazily on the loop's thread, so a generator must not block.
        """
        self._check_open()
        return self._loop.call(self._fan.map, fn, items, errors=errors, **options)

    @overload
    def gather(
        self,
        *awaitables: Awaitable[R],
        concurrency: int | None = ...,
        errors: Literal["raise", "collect"] | None = ...,
    ) -> list[R]: ...

    @overload
    def gather(
        self,
        *awaitables: Awaitable[R],
        concurrency: int | None = ...,
        errors: Literal["return"],
    ) -> list[R | Exception]: ...

    def gather(
        self,
        *awaitables: Awaitable[Any],
        concurrency: int | None = None,
        errors: ErrorPolicy | None = None,
    ) -> list[Any]:
        """Await every awaitable on the Fan's loop; return the results in order.

        Takes the options of `anyfan.Fan.gather`. Coroutines that never got to
        run are closed, so none is reported as never awaited.
        """
        try:
            self._check_open()
            return self._loop.call(
                self._fan.gather, *awaitables, concurrency=concurrency, errors=errors
            )
        except BaseException:
            close_unstarted(awaitables)
            raise

    @overload
    def stream(
        self, fn: Callable[[T], Awaitable[R]], items: Items[T], **options: Unpack[StreamOptions]
    ) -> Outcomes[T, R]: ...

    @overload
    def stream(
        self, fn: Callable[[T], R], items: Items[T], **options: Unpack[StreamOptions]
    ) -> Outcomes[T, R]: ...

    def stream(
        self, fn: Callable[[T], Any], items: Items[T], **options: Unpack[StreamOptions]
    ) -> Outcomes[T, Any]:
        """Return a plain iterator of `anyfan.Outcome`, one per item, as calls finish.

        Takes the options of `anyfan.Fan.stream` (``ordered=True`` for input
        order). Leaving it early (``break``, ``close()``, garbage collection)
        cancels what is still outstanding.
        """
        self._check_open()
        check_callable(fn)
        fan = self._fan
        return Outcomes(
            self._loop,
            lambda: fan.stream(fn, items, **options),
            capacity=stream_capacity(options, fan.concurrency),
        )
