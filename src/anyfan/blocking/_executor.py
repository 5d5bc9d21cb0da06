"""`Executor`: a `concurrent.futures.Executor` whose work runs on an anyfan `Fan`.

Submitted work is fed, as an endless async iterable, to one long-running
``stream`` of the Fan, so it gets the Fan's workers, limits and options
(``timeout``, and whatever else `anyfan.Fan` takes) at the cost of a few
microseconds per item. Each outcome settles its `concurrent.futures.Future`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar, overload

import anyio

from .._core import DEFAULT_CONCURRENCY, as_async, check_callable, is_async_callable
from .._core import Fan as AsyncFan
from ._loop import Backend, Job, Loop, resolve_loop

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping

    from .._core import Outcome

T = TypeVar("T")
P = ParamSpec("P")

#: The value of a work item whose future was cancelled before it could start.
_SKIPPED: Final[Any] = object()


class _Raised:
    """A `BaseException` (not cancellation) raised by a work item, boxed for its future.

    `concurrent.futures` hands such exceptions to the future, while the Fan
    would treat them as fatal to the whole run.
    """

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Work:
    __slots__ = ("args", "fn", "future", "is_async", "kwargs")

    def __init__(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.is_async = is_async_callable(fn)
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()


def _call(work: _Work) -> Any:
    return work.fn(*work.args, **work.kwargs)


class _Engine:
    """Everything an `Executor` does, kept apart so the public object can be collected."""

    def __init__(self, fan: AsyncFan, loop: Loop, owns_loop: bool) -> None:
        self._fan = fan
        self._loop = loop
        self._owns_loop = owns_loop
        self._lock = threading.Lock()
        self._queue: deque[_Work] = deque()
        self._unfinished: set[_Work] = set()
        self._puller: anyio.Event | None = None
        self._shutdown = False
        self._broken: str | None = None
        self._job: Job[None] | None = None
        self._in_thread = as_async(_call, fan.concurrency)
        self._cancelled: type[BaseException] = BaseException

    # -- caller side ---------------------------------------------------------

    def submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> concurrent.futures.Future[Any]:
        work = _Work(fn, args, kwargs)
        with self._lock:
            if self._broken is not None:
                raise concurrent.futures.BrokenExecutor(self._broken)
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._job is None:
                # Serves every later submitter too: it must not carry this one's context.
                self._job = self._loop.submit(
                    self._serve, on_done=self._served, inherit_context=False
                )
            self._queue.append(work)
            self._unfinished.add(work)
            puller, self._puller = self._puller, None
        if puller is not None:
            self._loop.post(puller.set)
        return work.future

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        with self._lock:
            self._shutdown = True
            puller, self._puller = self._puller, None
            job = self._job
            unfinished = list(self._unfinished) if cancel_futures else []
        for work in unfinished:
            work.future.cancel()  # only those not yet running
        if puller is not None:
            self._loop.post(puller.set)
        if job is None:
            if self._owns_loop:
                self._loop._close(join=wait)
            return
        if wait:
            self._loop.check_caller()
            job.wait_done()
            if self._owns_loop:
                self._loop.close()

    # -- loop side -----------------------------------------------------------

    def __aiter__(self) -> _Engine:
        return self

    async def __anext__(self) -> _Work:
        while True:
            with self._lock:
                if self._queue:
                    return self._queue.popleft()
                if self._shutdown:
                    raise StopAsyncIteration
                puller = self._puller = anyio.Event()
            await puller.wait()

    async def _run(self, work: _Work) -> Any:
        if not work.future.set_running_or_notify_cancel():
            return _SKIPPED
        try:
            if work.is_async:
                return await work.fn(*work.args, **work.kwargs)
            return await self._in_thread(work)
        except (Exception, self._cancelled):
            raise
        except BaseException as exc:
            return _Raised(exc)

    async def _serve(self) -> None:
        self._cancelled = anyio.get_cancelled_exc_class()
        async with self._fan.stream(self._run, self) as outcomes:
            async for outcome in outcomes:
                self._settle(outcome)

    def _settle(self, outcome: Outcome[_Work, Any]) -> None:
        work = outcome.item
        with self._lock:
            self._unfinished.discard(work)
        future, value = work.future, outcome.value
        if outcome.error is not None:
            future.set_exception(outcome.error)
        elif isinstance(value, _Raised):
            future.set_exception(value.error)
        elif value is not _SKIPPED:
            future.set_result(value)

    def _served(self) -> None:
        # The serving job ended: normally after shutdown, else because the loop
        # closed, failed to start, or the run was interrupted. Nobody may be
        # left waiting on a future that will never settle.
        with self._lock:
            job = self._job
            assert job is not None
            if not self._shutdown or job.error is not None:
                self._broken = f"the executor's event loop stopped: {job.error!r}"
            left, self._unfinished = list(self._unfinished), set()
            self._queue.clear()
        for work in left:
            # A future may be cancelled by its owner meanwhile; that settles it too.
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                work.future.set_exception(
                    concurrent.futures.BrokenExecutor(self._broken or "executor stopped")
                )
        if self._owns_loop and self._shutdown:
            self._loop._close(join=False)


class Executor(concurrent.futures.Executor):
    """A `concurrent.futures.Executor` that runs async and sync callables under one `Fan`.

    ``submit`` takes async callables, which run on the executor's event loop,
    and sync ones, which run in worker threads; either way at most
    ``concurrency`` run at once, and the result arrives in a
    `concurrent.futures.Future`. A drop-in for a `ThreadPoolExecutor` whose
    tasks wrap `asyncio.run`: submit the coroutine function itself instead.

    Args:
        concurrency: Most calls in flight at once.
        max_workers: The `concurrent.futures` spelling of ``concurrency``;
            give one or the other.
        backend: ``"asyncio"`` (the default) or ``"trio"``, for the executor's loop.
        backend_options: Passed to `anyio.run`, e.g. ``{"use_uvloop": True}``.
        loop: Run on this shared `Loop` instead of one of its own.
        **options: Any other option of `anyfan.Fan`, such as ``timeout``.
    """

    def __init__(
        self,
        concurrency: int | None = None,
        *,
        max_workers: int | None = None,
        backend: Backend | None = None,
        backend_options: Mapping[str, Any] | None = None,
        loop: Loop | None = None,
        **options: Any,
    ) -> None:
        if concurrency is not None and max_workers is not None:
            raise TypeError(
                "give concurrency or max_workers (its concurrent.futures name), not both"
            )
        if concurrency is None:
            concurrency = DEFAULT_CONCURRENCY if max_workers is None else max_workers
        fan = AsyncFan(concurrency, **options)
        target, owned = resolve_loop(backend, backend_options, loop, private=True)
        self._concurrency = fan.concurrency
        self._engine = _Engine(fan, target, owned)
        # Like ThreadPoolExecutor: a forgotten executor still finishes its work.
        finalizer = weakref.finalize(self, self._engine.shutdown, False, False)
        finalizer.atexit = False

    def __repr__(self) -> str:
        return f"<anyfan.Executor concurrency={self._concurrency} on {self._engine._loop!r}>"

    @overload
    def submit(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]: ...

    @overload
    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]: ...

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        """Schedule ``fn(*args, **kwargs)``, awaited if ``fn`` is async; return its future."""
        check_callable(fn)
        return self._engine.submit(fn, args, kwargs)

    @overload
    def map(
        self,
        fn: Callable[..., Awaitable[T]],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[T]: ...

    @overload
    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[T]: ...

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:
        """Like `concurrent.futures.Executor.map`: results in input order, async ``fn`` awaited."""
        check_callable(fn)
        return super().map(fn, *iterables, timeout=timeout, chunksize=chunksize)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new work; with ``wait``, block until submitted work is done.

        ``cancel_futures=True`` cancels everything not yet running. Ctrl-C
        while waiting cancels the running work too and re-raises.
        """
        self._engine.shutdown(wait, cancel_futures)
