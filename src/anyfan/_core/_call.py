"""`Fan.call`: one call through a Fan's slots, limits, pause, retries and stats.

What a web handler or a worker needs: one item at a time, while hundreds of
other callers (and any running ``map``) share the same limits. The call
returns its value or raises its own final exception, never a `FanError`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ._attempts import guarded, timed
from ._clock import loop_clock, loop_token
from ._engine import as_async, is_async_callable
from ._outcome import make_outcome

if TYPE_CHECKING:
    from ._fan import Fan
    from ._policy import Policy
    from ._progress import Observer

T = TypeVar("T")
R = TypeVar("R")


class Caller:
    """A Fan's state for single calls: the sync-callable cache and the loop last bound.

    Rates and pauses keep times on the loop's clock; a run re-binds them at
    its start, and single calls re-bind whenever the event loop changes.
    """

    __slots__ = ("_fn", "_wrapped", "now", "token")

    def __init__(self) -> None:
        self._fn: Any = None
        self._wrapped: Any = None
        self.token: object = None
        self.now: Callable[[], float] = anyio.current_time  # replaced on binding

    def prepared(self, fn: Callable[[T], Any], threads: int) -> Callable[[T], Awaitable[Any]]:
        """``fn`` as an async callable; a sync one runs in a worker thread (as in ``map``)."""
        if fn is self._fn:
            return self._wrapped  # type: ignore[no-any-return]
        wrapped = fn if is_async_callable(fn) else _InThreads(fn, threads)
        self._fn, self._wrapped = fn, wrapped
        return wrapped

    def bind(self, policy: Policy) -> Callable[[], float]:
        """Bind ``policy`` to the running loop unless calls already did; return its clock."""
        # asyncio's running loop is its token, and far cheaper to fetch than anyio's.
        token = asyncio._get_running_loop() or loop_token()
        if token is not self.token:
            policy.bind()
            self.token = token
            self.now = loop_clock()
        return self.now


class _InThreads:
    """A sync function run in worker threads, with a thread limiter per event loop.

    The wrapper is kept across calls, and a Fan may serve one event loop
    after another; a thread limiter belongs to the loop it was made on.
    """

    __slots__ = ("_fn", "_threads", "_token", "_wrapped")

    def __init__(self, fn: Callable[[Any], Any], threads: int) -> None:
        self._fn = fn
        self._threads = threads
        self._token: object = None
        self._wrapped: Callable[[Any], Awaitable[Any]] | None = None

    async def __call__(self, item: Any) -> Any:
        token = asyncio._get_running_loop() or loop_token()
        if token is not self._token:
            self._wrapped = as_async(self._fn, self._threads)
            self._token = token
        assert self._wrapped is not None
        return await self._wrapped(item)


async def call(
    fan: Fan,
    caller: Caller | None,
    fn: Callable[[T], Any],
    item: T,
    *,
    timeout: float | None,
    policy: Policy,
    on_outcome: Observer | None,
) -> Any:
    """The body of `Fan.call`, once its options are resolved.

    ``caller`` remembers the loop its ``policy`` was bound to; ``None`` binds
    it on every call (for a policy made for this call alone).
    """
    call_fn = (caller or fan._caller).prepared(fn, fan._concurrency)
    slots, stats = fan._slots, fan._stats
    if not policy.active:
        # The fast path: one slot, one attempt, no clock read unless a hook wants it.
        now = loop_clock() if on_outcome is not None or timeout is not None else None
        await slots.acquire()
        started = now() if on_outcome is not None else 0.0  # type: ignore[misc]
        stats.started += 1
        try:
            if timeout is None:
                value = await call_fn(item)
            else:
                value = await timed(call_fn, item, timeout, now)  # type: ignore[arg-type]
        except Exception as exc:
            stats.failed += 1
            if on_outcome is not None:
                on_outcome(make_outcome(0, item, None, exc, 1, now() - started))  # type: ignore[misc]
            raise
        except BaseException:
            stats.cancelled += 1
            raise
        else:
            stats.succeeded += 1
        finally:
            slots.release()
        if on_outcome is not None:
            on_outcome(make_outcome(0, item, value, None, 1, now() - started))  # type: ignore[misc]
        return value
    if caller is None:
        policy.bind()
        now = loop_clock()
    else:
        now = caller.bind(policy)
    attempt_fn = call_fn
    if timeout is not None:
        attempt_fn = functools.partial(timed, call_fn, timeout=timeout, now=now)
    value, error, attempts, first = await guarded(attempt_fn, item, slots, stats, policy, now)
    if on_outcome is not None:
        on_outcome(make_outcome(0, item, value, error, attempts, now() - first))
    if error is not None:
        try:
            raise error
        finally:
            del error
    return value


def wrapped(
    fan: Fan, fn: Callable[[T], Any], *, timeout: float | None, policy: Policy
) -> Callable[[T], Awaitable[Any]]:
    """``fn`` as an async function whose every call goes through ``fan`` like `Fan.call`.

    The options are resolved once, here; the wrapper remembers its own loop.
    """
    caller = Caller()

    @functools.wraps(fn)
    async def through_fan(item: T) -> Any:
        return await call(fan, caller, fn, item, timeout=timeout, policy=policy, on_outcome=None)

    return through_fan
