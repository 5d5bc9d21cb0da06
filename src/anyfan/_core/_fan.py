"""`Fan`: a reusable fan-out engine whose limits are shared by all its calls."""

from __future__ import annotations

import enum
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal, TypeVar, overload

from ._aggregate import Collector
from ._engine import MapRun, Outcomes, StreamRun, as_async, check_callable
from ._options import (
    DEFAULT_CONCURRENCY,
    ErrorPolicy,
    check_concurrency,
    check_errors,
    check_seconds,
)
from ._policy import Policy
from ._progress import Observer, Progress, check_progress, make_observer
from ._rate import Rate
from ._retry import Retry
from ._slots import Slots
from ._stats import FanStats, Stats

T = TypeVar("T")
R = TypeVar("R")


class _Unset(enum.Enum):
    token = enum.auto()


UNSET: Literal[_Unset.token] = _Unset.token

Items = Iterable[T] | AsyncIterable[T]


async def _await(awaitable: Awaitable[R]) -> R:
    return await awaitable


def close_unstarted(awaitables: Iterable[Awaitable[Any]]) -> None:
    """Close the coroutines that never started, so none warns that it was never awaited."""
    for awaitable in awaitables:
        if inspect.iscoroutine(awaitable) and (
            inspect.getcoroutinestate(awaitable) == inspect.CORO_CREATED
        ):
            awaitable.close()


class Fan:
    """A reusable fan-out engine.

    Every ``map``, ``gather`` and ``stream`` on one Fan draws from the same
    pool of ``concurrency`` call slots, so the limit holds across concurrent
    callers and tasks. Options given here are defaults that each call may
    override.

    Args:
        concurrency: Most calls in flight at once, across all uses of this Fan.
        timeout: Seconds each call may take before it fails with `TimeoutError`.
        errors: Default error policy: ``"raise"``, ``"collect"`` or ``"return"``.
        limits: `Rate` limits every call must pass, shared by all uses of this
            Fan (an ``aiolimiter.AsyncLimiter`` is accepted under asyncio).
        retry: A `Retry` policy for failed calls, or ``None`` for no retries.
    """

    def __init__(
        self,
        concurrency: int = DEFAULT_CONCURRENCY,
        *,
        timeout: float | None = None,
        errors: ErrorPolicy = "raise",
        limits: Iterable[Any] = (),
        retry: Retry | None = None,
    ) -> None:
        self._concurrency = check_concurrency(concurrency)
        self._timeout = check_seconds(timeout, name="timeout")
        self._errors = check_errors(errors)
        self._policy = Policy(limits=limits, retry=retry)
        self._slots = Slots(self._concurrency)
        self._stats = Stats()

    def __repr__(self) -> str:
        extra = ""
        if self._policy.limits is not None:
            extra += f", limits={list(self._policy.limits.rates)!r}"
        if self._policy.retry is not None:
            extra += f", retry={self._policy.retry!r}"
        return (
            f"{type(self).__name__}(concurrency={self._concurrency}, "
            f"timeout={self._timeout!r}, errors={self._errors!r}{extra})"
        )

    @property
    def limits(self) -> tuple[Rate, ...]:
        """The rate limits every call of this Fan obeys."""
        return () if self._policy.limits is None else self._policy.limits.rates

    @property
    def retry(self) -> Retry | None:
        """The retry policy, if any."""
        return self._policy.retry

    @property
    def stats(self) -> FanStats:
        """A snapshot of this Fan's activity: attempts, outcomes, pauses, admitted rates.

        Read it from the thread that runs the Fan's event loop (the blocking
        facade's ``Fan.stats`` does that for you).
        """
        policy = self._policy
        return self._stats.snapshot(
            paused=0.0 if policy.pause is None else policy.pause.paused_time(),
            limits=() if policy.limits is None else policy.limits.stats(),
        )

    @property
    def concurrency(self) -> int:
        """Most calls in flight at once."""
        return self._concurrency

    @property
    def in_flight(self) -> int:
        """Calls running right now, across every use of this Fan."""
        return self._slots.in_use

    def _width(self, concurrency: int | None) -> int:
        if concurrency is None:
            return self._concurrency
        return min(check_concurrency(concurrency), self._concurrency)

    def _run_options(
        self,
        concurrency: int | None,
        timeout: float | _Unset | None,
        deadline: float | None,
        limits: Iterable[Any],
        retry: Retry | _Unset | None,
    ) -> dict[str, Any]:
        policy = self._policy
        limits = tuple(limits)
        if limits or retry is not UNSET:
            policy = Policy(
                limits=(*(policy.limits.rates if policy.limits else ()), *limits),
                retry=policy.retry if retry is UNSET else retry,
                pause=policy.pause,
            )
        return {
            "slots": self._slots,
            "stats": self._stats,
            "policy": policy if policy.active else None,
            "width": self._width(concurrency),
            "timeout": self._timeout
            if timeout is UNSET
            else check_seconds(timeout, name="timeout"),
            "deadline": check_seconds(deadline, name="deadline"),
        }

    @overload
    async def map(
        self,
        fn: Callable[[T], Awaitable[R]],
        items: Items[T],
        *,
        concurrency: int | None = ...,
        timeout: float | _Unset | None = ...,
        deadline: float | None = ...,
        limits: Iterable[Any] = ...,
        retry: Retry | _Unset | None = ...,
        progress: Progress = ...,
        on_outcome: Observer | None = ...,
        errors: Literal["raise", "collect"] | None = ...,
    ) -> list[R]: ...

    @overload
    async def map(
        self,
        fn: Callable[[T], Awaitable[R]],
        items: Items[T],
        *,
        concurrency: int | None = ...,
        timeout: float | _Unset | None = ...,
        deadline: float | None = ...,
        limits: Iterable[Any] = ...,
        retry: Retry | _Unset | None = ...,
        progress: Progress = ...,
        on_outcome: Observer | None = ...,
        errors: Literal["return"],
    ) -> list[R | Exception]: ...

    @overload
    async def map(
        self,
        fn: Callable[[T], R],
        items: Items[T],
        *,
        concurrency: int | None = ...,
        timeout: float | _Unset | None = ...,
        deadline: float | None = ...,
        limits: Iterable[Any] = ...,
        retry: Retry | _Unset | None = ...,
        progress: Progress = ...,
        on_outcome: Observer | None = ...,
        errors: Literal["raise", "collect"] | None = ...,
    ) -> list[R]: ...

    @overload
    async def map(
        self,
        fn: Callable[[T], R],
        items: Items[T],
        *,
        concurrency: int | None = ...,
        timeout: float | _Unset | None = ...,
        deadline: float | None = ...,
        limits: Iterable[Any] = ...,
        retry: Retry | _Unset | None = ...,
        progress: Progress = ...,
        on_outcome: Observer | None = ...,
        errors: Literal["return"],
    ) -> list[R | Exception]: ...

    async def map(
        self,
        fn: Callable[[T], Any],
        items: Items[T],
        *,
        concurrency: int | None = None,
        timeout: float | _Unset | None = UNSET,
        deadline: float | None = None,
        limits: Iterable[Any] = (),
        retry: Retry | _Unset | None = UNSET,
        progress: Progress = False,
        on_outcome: Observer | None = None,
        errors: ErrorPolicy | None = None,
    ) -> list[Any]:
        """Call ``fn`` on every item, at most ``concurrency`` at a time; return results in order.

        ``fn`` may be async, or a plain function, which then runs in worker
        threads under the same limits. ``items`` may be any iterable or async
        iterable, endless ones included: items are pulled only as workers free
        up. ``timeout`` bounds each call, ``deadline`` the whole map (it raises
        `DeadlineExceeded`). ``errors`` picks the error policy; see
        [semantics](../explanation/semantics.md). ``limits`` adds rate limits
        to the Fan's for this call and ``retry`` replaces its retry policy.
        ``progress=True`` (or a label, or `ProgressOptions`) shows progress: a tqdm bar on
        a terminal, else a plain line at most every 10 s; ``on_outcome`` is
        called with each item's `Outcome` as it finishes.
        """
        options = self._run_options(concurrency, timeout, deadline, limits, retry)
        collector = Collector(self._errors if errors is None else check_errors(errors))
        observer, close = make_observer(items, progress, on_outcome)
        run: MapRun[T, Any] = MapRun(
            as_async(fn, options["width"]), items, collector=collector, observer=observer, **options
        )
        try:
            async with run.running(stop_on_exit=False):
                pass
        finally:
            close()
        return collector.outcome()

    async def gather(
        self,
        *awaitables: Awaitable[Any],
        concurrency: int | None = None,
        errors: ErrorPolicy | None = None,
    ) -> list[Any]:
        """Await every awaitable, at most ``concurrency`` at a time; return results in order.

        Like `asyncio.gather`, but structured: on failure (with the default
        ``errors="raise"``) the rest are cancelled, and coroutines that never
        started are closed so nothing is left un-awaited.
        """
        try:
            options = self._run_options(concurrency, None, None, (), UNSET)
            collector = Collector(self._errors if errors is None else check_errors(errors))
            run: MapRun[Awaitable[Any], Any] = MapRun(
                _await, awaitables, collector=collector, **options
            )
            async with run.running(stop_on_exit=False):
                pass
        finally:
            close_unstarted(awaitables)
        return collector.outcome()

    @overload
    def stream(
        self,
        fn: Callable[[T], Awaitable[R]],
        items: Items[T],
        *,
        ordered: bool = ...,
        concurrency: int | None = ...,
        timeout: float | _Unset | None = ...,
        deadline: float | None = ...,
        limits: Iterable[Any] = ...,
        retry: Retry | _Unset | None = ...,
        progress: Progress = ...,
        on_outcome: Observer | None = ...,
    ) -> AbstractAsyncContextManager[Outcomes[T, R]]: ...

    @overload
    def stream(
        self,
        fn: Callable[[T], R],
        items: Items[T],
        *,
        ordered: bool = ...,
        concurrency: int | None = ...,
        timeout: float | _Unset | None = ...,
        deadline: float | None = ...,
        limits: Iterable[Any] = ...,
        retry: Retry | _Unset | None = ...,
        progress: Progress = ...,
        on_outcome: Observer | None = ...,
    ) -> AbstractAsyncContextManager[Outcomes[T, R]]: ...

    def stream(
        self,
        fn: Callable[[T], Any],
        items: Items[T],
        *,
        ordered: bool = False,
        concurrency: int | None = None,
        timeout: float | _Unset | None = UNSET,
        deadline: float | None = None,
        limits: Iterable[Any] = (),
        retry: Retry | _Unset | None = UNSET,
        progress: Progress = False,
        on_outcome: Observer | None = None,
    ) -> AbstractAsyncContextManager[Outcomes[T, Any]]:
        """Call ``fn`` on every item and yield an `Outcome` for each as it finishes.

        Use as ``async with fan.stream(fn, items) as outcomes: async for o in
        outcomes: ...``. Failures arrive as outcomes with ``error`` set; they
        do not stop the stream. With ``ordered=True`` outcomes come in input
        order. Leaving the block early cancels the calls still in flight.
        """
        check_callable(fn)
        options = self._run_options(concurrency, timeout, deadline, limits, retry)
        make_observer(items, False, on_outcome)  # reject bad options now, not on entry
        check_progress(progress)

        def start() -> tuple[StreamRun[T, Any], Callable[[], None]]:
            # Built on entry, so a stream that is never entered leaves nothing open.
            observer, close = make_observer(items, progress, on_outcome)
            return StreamRun(
                as_async(fn, options["width"]), items, observer=observer, **options
            ), close

        return _stream(start, ordered)


@asynccontextmanager
async def _stream(
    start: Callable[[], tuple[StreamRun[T, R], Callable[[], None]]], ordered: bool
) -> AsyncIterator[Outcomes[T, R]]:
    run, close = start()
    try:
        async with run.running(stop_on_exit=True):
            yield Outcomes(run.channel, ordered=ordered)
    finally:
        close()
