"""`Fan`: a reusable fan-out engine whose limits are shared by all its calls."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal, TypeVar, Unpack, overload

from . import _call, _group
from ._aggregate import Collector
from ._engine import MapRun, Outcomes, StreamRun, as_async, check_callable
from ._hooks import Hooks, OnPause, OnRetry
from ._options import (
    DEFAULT_CONCURRENCY,
    CallOptions,
    ErrorPolicy,
    MapOptions,
    StreamOptions,
    WrapOptions,
    check_concurrency,
    check_errors,
    check_keywords,
    check_seconds,
)
from ._policy import Policy
from ._progress import check_progress, make_observer
from ._rate import Rate
from ._retry import Retry
from ._slots import Slots
from ._stats import FanStats, Stats

T = TypeVar("T")
R = TypeVar("R")


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


def one_shot(concurrency: int, **options: Any) -> Fan:
    """Return a `Fan` for one module-level call (``anyfan.map`` and the like).

    Nobody else can reach it, so its one run has the slots to itself: with
    no more workers than slots, a worker never has to take or give one back.
    """
    fan = Fan(concurrency, **options)
    fan._alone = True
    return fan


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
        on_retry: Called with a `RetryEvent` before each retry waits.
        on_pause: Called with a `PauseEvent` when a server's delay starts or
            extends the shared pause.
    """

    def __init__(
        self,
        concurrency: int = DEFAULT_CONCURRENCY,
        *,
        timeout: float | None = None,
        errors: ErrorPolicy = "raise",
        limits: Iterable[Any] = (),
        retry: Retry | None = None,
        on_retry: OnRetry | None = None,
        on_pause: OnPause | None = None,
    ) -> None:
        self._concurrency = check_concurrency(concurrency)
        self._timeout = check_seconds(timeout, name="timeout")
        self._errors = check_errors(errors)
        self._policy = Policy(limits=limits, retry=retry, hooks=Hooks(on_retry, on_pause))
        self._slots = Slots(self._concurrency)
        self._alone = False
        self._stats = Stats()
        self._caller = _call.Caller()

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

    def _policy_for(self, options: Mapping[str, Any]) -> Policy:
        """The Fan's policy, or one with more limits or another retry that shares its pause."""
        policy = self._policy
        limits = tuple(options.get("limits", ()))
        if limits or "retry" in options:
            policy = Policy(
                limits=(*(policy.limits.rates if policy.limits else ()), *limits),
                retry=options.get("retry", policy.retry),
                pause=policy.pause,
                hooks=policy.hooks,
            )
        return policy

    def _run_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """What a run needs from the Fan and a call's options (`MapOptions`, checked here)."""
        policy = self._policy_for(options)
        timeout = options.get("timeout", self._timeout)
        return {
            "slots": self._slots,
            "alone": self._alone,
            "stats": self._stats,
            "policy": policy if policy.active else None,
            "width": self._width(options.get("concurrency")),
            "timeout": check_seconds(timeout, name="timeout"),
            "deadline": check_seconds(options.get("deadline"), name="deadline"),
        }

    @overload
    async def call(
        self, fn: Callable[[T], Awaitable[R]], item: T, **options: Unpack[CallOptions]
    ) -> R: ...

    @overload
    async def call(self, fn: Callable[[T], R], item: T, **options: Unpack[CallOptions]) -> R: ...

    async def call(self, fn: Callable[[T], Any], item: T, **options: Unpack[CallOptions]) -> Any:
        """Call ``fn(item)`` once, under this Fan's limits; return its value or raise its error.

        The call takes one of the Fan's slots, passes its rate limits and
        shared pause, and is retried and timed out like an item of `map`,
        sharing all of these with every other `call`, `map` and `stream` on
        this Fan, from any number of tasks. Its final exception is raised as
        it is (an ``openai.RateLimitError``, say), never wrapped in a
        `FanError`. ``fn`` may be async or sync (then run in a worker thread).

        Args:
            fn: Called once: ``fn(item)``.
            item: Its argument.
            **options: Any of `CallOptions`: ``timeout``, ``limits`` and
                ``retry`` override the Fan's for this call; ``on_outcome`` is
                called with its `Outcome` (attempts, elapsed time) before it returns.

        Raises:
            TypeError: For an unknown option or a ``fn`` that is not callable.
        """
        check_keywords(options, CallOptions, "call")
        check_callable(fn)
        on_outcome = options.get("on_outcome")
        if on_outcome is not None and not callable(on_outcome):
            raise TypeError(f"on_outcome must be a function or None, got {on_outcome!r}")
        if not ({"timeout", "retry", "limits"} & options.keys()):
            return await _call.call(
                self,
                self._caller,
                fn,
                item,
                timeout=self._timeout,
                policy=self._policy,
                on_outcome=on_outcome,
            )
        return await _call.call(
            self,
            None,  # a policy of its own, bound afresh
            fn,
            item,
            timeout=check_seconds(options.get("timeout", self._timeout), name="timeout"),
            policy=self._policy_for(options),
            on_outcome=on_outcome,
        )

    @overload
    def wrap(
        self, fn: Callable[[T], Awaitable[R]], **options: Unpack[WrapOptions]
    ) -> Callable[[T], Awaitable[R]]: ...

    @overload
    def wrap(
        self, fn: Callable[[T], R], **options: Unpack[WrapOptions]
    ) -> Callable[[T], Awaitable[R]]: ...

    def wrap(
        self, fn: Callable[[T], Any], **options: Unpack[WrapOptions]
    ) -> Callable[[T], Awaitable[Any]]:
        """Return an async function ``f(item)`` that makes `call` ``(fn, item)``.

        Also a decorator: ``@fan.wrap`` above ``async def ask(request): ...``
        makes every ``await ask(request)`` go through this Fan. The options
        (`WrapOptions`: ``timeout``, ``limits``, ``retry``) are those of `call`,
        fixed for every call of ``f``.
        """
        check_keywords(options, WrapOptions, "wrap")
        if not callable(fn):
            raise TypeError(f"wrap needs a function, got {fn!r}")
        return _call.wrapped(
            self,
            fn,
            timeout=check_seconds(options.get("timeout", self._timeout), name="timeout"),
            policy=self._policy_for(options),
        )

    def group(self) -> AbstractAsyncContextManager[_group.Group]:
        """A task group for calls: ``async with fan.group() as g: g.start_soon(fn, item)``.

        Each ``start_soon`` runs `call` in a new task and returns at once; the
        calls wait for this Fan's slots and limits like any other. The block
        waits for every call. The first failure cancels the rest, and leaving
        the block then raises a `FanError` of every failure.
        """
        return _group.group(self)

    @overload
    async def map(
        self,
        fn: Callable[[T], Awaitable[R]],
        items: Items[T],
        *,
        errors: Literal["raise", "collect"] | None = ...,
        **options: Unpack[MapOptions],
    ) -> list[R]: ...

    @overload
    async def map(
        self,
        fn: Callable[[T], Awaitable[R]],
        items: Items[T],
        *,
        errors: Literal["return"],
        **options: Unpack[MapOptions],
    ) -> list[R | Exception]: ...

    @overload
    async def map(
        self,
        fn: Callable[[T], R],
        items: Items[T],
        *,
        errors: Literal["raise", "collect"] | None = ...,
        **options: Unpack[MapOptions],
    ) -> list[R]: ...

    @overload
    async def map(
        self,
        fn: Callable[[T], R],
        items: Items[T],
        *,
        errors: Literal["return"],
        **options: Unpack[MapOptions],
    ) -> list[R | Exception]: ...

    async def map(
        self,
        fn: Callable[[T], Any],
        items: Items[T],
        *,
        errors: ErrorPolicy | None = None,
        **options: Unpack[MapOptions],
    ) -> list[Any]:
        """Call ``fn`` on every item, at most ``concurrency`` at a time; return results in order.

        ``fn`` may be async, or a plain function, which then runs in worker
        threads under the same limits. ``items`` may be any iterable or async
        iterable, endless ones included: items are pulled only as workers free
        up. See [semantics](../explanation/semantics.md) for the error policies.

        Args:
            fn: Called once per item: ``fn(item)``.
            items: The inputs, an iterable or an async iterable.
            errors: ``"raise"``, ``"collect"`` or ``"return"``; by default the Fan's.
            **options: Any of `MapOptions`. ``concurrency`` lowers the Fan's
                limit for this call; ``timeout`` (seconds per call, ``None`` for
                none) and ``retry`` replace the Fan's, which apply when left out;
                ``deadline`` bounds the whole map in seconds (it raises
                `DeadlineExceeded`); ``limits`` adds rate limits to the Fan's;
                ``progress=True`` (a label, or `ProgressOptions`) shows progress: a
                tqdm bar on a terminal, else a plain line at most every 10 s; ``on_outcome``
                is called with each item's `Outcome` as it finishes.

        Raises:
            TypeError: For an unknown option.
        """
        check_keywords(options, MapOptions, "map")
        run_options = self._run_options(options)
        collector = Collector(self._errors if errors is None else check_errors(errors))
        observer, close = make_observer(
            items, options.get("progress", False), options.get("on_outcome")
        )
        run: MapRun[T, Any] = MapRun(
            as_async(fn, run_options["width"]),
            items,
            collector=collector,
            observer=observer,
            **run_options,
        )
        try:
            async with run.running(stop_on_exit=False):
                pass
        finally:
            close()
        return collector.outcome()

    @overload
    async def gather(
        self,
        *awaitables: Awaitable[R],
        concurrency: int | None = ...,
        errors: Literal["raise", "collect"] | None = ...,
    ) -> list[R]: ...

    @overload
    async def gather(
        self,
        *awaitables: Awaitable[R],
        concurrency: int | None = ...,
        errors: Literal["return"],
    ) -> list[R | Exception]: ...

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

        Args:
            *awaitables: What to await; results come back in this order.
            concurrency: Most awaited at once; by default (and at most) the Fan's.
            errors: ``"raise"``, ``"collect"`` or ``"return"``; by default the Fan's.
        """
        try:
            # The Fan's per-call timeout is for calls of ``fn``; awaitables have none.
            run_options = self._run_options({"concurrency": concurrency, "timeout": None})
            collector = Collector(self._errors if errors is None else check_errors(errors))
            run: MapRun[Awaitable[Any], Any] = MapRun(
                _await, awaitables, collector=collector, **run_options
            )
            async with run.running(stop_on_exit=False):
                pass
        finally:
            close_unstarted(awaitables)
        return collector.outcome()

    @overload
    def stream(
        self, fn: Callable[[T], Awaitable[R]], items: Items[T], **options: Unpack[StreamOptions]
    ) -> AbstractAsyncContextManager[Outcomes[T, R]]: ...

    @overload
    def stream(
        self, fn: Callable[[T], R], items: Items[T], **options: Unpack[StreamOptions]
    ) -> AbstractAsyncContextManager[Outcomes[T, R]]: ...

    def stream(
        self, fn: Callable[[T], Any], items: Items[T], **options: Unpack[StreamOptions]
    ) -> AbstractAsyncContextManager[Outcomes[T, Any]]:
        """Call ``fn`` on every item and yield an `Outcome` for each as it finishes.

        Use as ``async with fan.stream(fn, items) as outcomes: async for o in
        outcomes: ...``. Failures arrive as outcomes with ``error`` set; they
        do not stop the stream. Leaving the block early cancels the calls
        still in flight.

        Args:
            fn: Called once per item: ``fn(item)``.
            items: The inputs, an iterable or an async iterable.
            **options: Any of `StreamOptions`: ``ordered=True`` yields outcomes in
                input order; the others are those of `map`.

        Raises:
            TypeError: For an unknown option.
        """
        check_keywords(options, StreamOptions, "stream")
        check_callable(fn)
        run_options = self._run_options(options)
        progress = options.get("progress", False)
        on_outcome = options.get("on_outcome")
        make_observer(items, False, on_outcome)  # reject bad options now, not on entry
        check_progress(progress)

        def start() -> tuple[StreamRun[T, Any], Callable[[], None]]:
            # Built on entry, so a stream that is never entered leaves nothing open.
            observer, close = make_observer(items, progress, on_outcome)
            return StreamRun(
                as_async(fn, run_options["width"]), items, observer=observer, **run_options
            ), close

        return _stream(start, options.get("ordered", False))


@asynccontextmanager
async def _stream(
    start: Callable[[], tuple[StreamRun[T, R], Callable[[], None]]], ordered: bool
) -> AsyncIterator[Outcomes[T, R]]:
    run, close = start()
    outcomes = Outcomes(run.channel, ordered=ordered)
    try:
        async with run.running(stop_on_exit=True):
            yield outcomes
    finally:
        await outcomes.aclose()
        close()
