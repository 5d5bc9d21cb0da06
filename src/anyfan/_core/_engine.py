"""The scheduling layer: a few long-lived workers pull items lazily and call ``fn``.

Everything that can be decided without an event loop lives in the sans-I/O
modules (`_aggregate`, `_ordering`, `_options`); this module only moves items
between them and the loop. No task is spent per item: a run starts at most
``width`` workers, as many at once as its input says it holds (a list, a
range), and otherwise twice as many each time all are busy, until the limit.
"""

from __future__ import annotations

import inspect
import itertools
import math
import operator
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from contextvars import ContextVar
from types import AsyncGeneratorType
from typing import Any, Final, Generic, TypeVar, cast

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from ._aggregate import PENDING, Collector
from ._attempts import FRAMES as ATTEMPT_FRAMES
from ._attempts import guarded as attempts_of
from ._channel import Channel
from ._checkpoint import Checkpoint, native_checkpoint
from ._clock import duration_clock, loop_token, native_clock
from ._errors import DeadlineExceeded, Misuse, shed_frames
from ._options import CHECKPOINT_EVERY
from ._ordering import Reorderer
from ._outcome import Outcome, OutcomeDraft, make_outcome
from ._policy import Policy
from ._slots import Slots
from ._stats import Stats

T = TypeVar("T")
R = TypeVar("R")

_DONE: Final[Any] = object()

#: The slot pool whose slot the current task's calls run in, if it is a worker.
#: A fan-out started from inside such a call, on the same Fan, borrows that
#: slot instead of queueing for another one, which could never come free when
#: every slot is held by a caller waiting on its own inner fan-out.
_holding: ContextVar[Slots | None] = ContextVar("anyfan_holding", default=None)

#: Which event loop each busy slot pool is serving, and how many runs use it:
#: ``id(slots) -> [native loop token, runs, slots]``. A Fan's waiters are tied
#: to one loop, so a second loop at the same time is refused, not left to hang.
_serving: dict[int, list[Any]] = {}
_serving_lock = threading.Lock()


def _enter_loop(slots: Slots) -> None:
    token = anyio.lowlevel.current_token().native_token
    with _serving_lock:
        entry = _serving.get(id(slots))
        if entry is None:
            _serving[id(slots)] = [token, 1, slots]  # holding ``slots`` pins its id
        elif entry[0] is token:
            entry[1] += 1
        else:
            raise Misuse(
                "this Fan is already running on another event loop; an async Fan serves "
                "one event loop at a time (successive loops are fine). To share limits "
                "across threads, use one anyfan.blocking.Fan from all of them"
            )


def _leave_loop(slots: Slots) -> None:
    with _serving_lock:
        entry = _serving[id(slots)]
        entry[1] -= 1
        if entry[1] == 0:
            del _serving[id(slots)]


def is_async_callable(fn: object) -> bool:
    """Whether calling ``fn`` returns a coroutine, as far as can be told up front."""
    while True:
        if inspect.iscoroutinefunction(fn):
            return True
        wrapped = getattr(fn, "func", None)  # functools.partial
        if wrapped is None:
            break
        fn = wrapped
    call = getattr(type(fn), "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(call)


def check_callable(fn: object) -> None:
    """Reject a non-callable ``fn`` when the fan-out is set up, not once per item.

    Raises:
        TypeError: If ``fn`` is not callable.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__} {fn!r:.60}")


def as_async(fn: Callable[[T], Any], threads: int) -> Callable[[T], Awaitable[Any]]:
    """Return ``fn`` itself if it is async, else a wrapper that runs it in a thread.

    The wrapper's thread limiter has ``threads`` tokens so that worker threads
    never cap a run below its concurrency (anyio's default pool has 40). A
    sync callable that hands back an awaitable, such as a lambda returning a
    coroutine, has that awaitable awaited on the loop.

    Raises:
        TypeError: If ``fn`` is not callable.
    """
    check_callable(fn)
    if is_async_callable(fn):
        return fn
    limiter: anyio.CapacityLimiter | None = None

    def boxed(item: T) -> tuple[Any]:
        # Boxed so that trio does not reject a coroutine coming back from a thread.
        return (fn(item),)

    async def call_in_thread(item: T) -> Any:
        nonlocal limiter
        if limiter is None:
            limiter = anyio.CapacityLimiter(threads)
        (result,) = await anyio.to_thread.run_sync(boxed, item, limiter=limiter)
        if inspect.isawaitable(result):
            result = await result
        return result

    return call_in_thread


def is_cancellation(exc: BaseException, cancelled: type[BaseException]) -> bool:
    """Whether ``exc`` is the cancellation, bare or grouped.

    Under trio, a nursery inside ``fn`` (httpcore opens one to connect) passes
    the cancellation on wrapped in a `BaseExceptionGroup`; it is still the
    run's own cancellation, not a fatal error.
    """
    if isinstance(exc, cancelled):
        return True
    return isinstance(exc, BaseExceptionGroup) and exc.split(cancelled)[1] is None


def _length_hint(iterator: object) -> int:
    """How many items ``iterator`` says it has left (`operator.length_hint`), or 0.

    Exact and cheap for the iterators of lists, tuples, ranges and dicts; 0 for
    a generator. Only a hint: an iterator that raises, or answers nonsense, is
    taken to say nothing, and a run that pulls more items than it said grows
    its workers as for any input.
    """
    try:
        return operator.length_hint(iterator)
    except Exception:
        return 0


class Run(Generic[T, R]):
    """One fan-out over ``items``: pull lazily, call, and hand each result on.

    Subclasses decide what a result becomes (``_reserve``, ``_deliver``).
    """

    def __init__(
        self,
        call: Callable[[T], Awaitable[R]],
        items: Any,
        *,
        slots: Slots,
        width: int,
        timeout: float | None,
        deadline: float | None,
        alone: bool = False,
        stats: Stats | None = None,
        policy: Policy | None = None,
        observer: Callable[[Outcome[Any, Any]], None] | None = None,
    ) -> None:
        self._call = call
        self._observer = observer
        if observer is not None:
            self._timed = True
        self._pool = slots
        if _holding.get() is slots:
            # Nested in a call that holds one of these slots: run in that slot,
            # one call at a time, so the Fan's limit holds and nothing waits on itself.
            slots, width = Slots(1), 1
        self._slots = slots
        # No other run or call shares the slots, and a run never has more
        # workers than slots: taking one cannot fail, so the fast path skips it.
        self._alone = alone
        self._stats = Stats() if stats is None else stats
        self._guarded = policy
        self._width = width
        self._timeout = timeout
        self._deadline = deadline
        self._iter: Any = None
        self._aiter: Any = None
        self._owns_aiter = False
        if hasattr(items, "__aiter__"):
            self._aiter = aiter(items)
            self._owns_aiter = self._aiter is not items
            self._pull_lock = Slots(1)
        else:
            self._iter = iter(items)
            self._known = _length_hint(self._iter)
        self._exhausted = False
        self._stopping = False
        self._spawned = 0
        self._live = 0
        self._fatal: BaseException | None = None
        self._failed_fast = False
        self._tg: TaskGroup | None = None
        self._now: Callable[[], float] = anyio.current_time
        #: The same clock for durations only (`_clock.duration_clock`): maybe cheaper.
        self._tick: Callable[[], float] = anyio.current_time
        #: Yields to the scheduler: the backend's own checkpoint, once the run has started.
        self._yield: Checkpoint = anyio.lowlevel.checkpoint
        #: What each worker task runs, given the run; a subclass may put a specialised
        #: loop here. The function, not a bound method: a bound method kept on the
        #: run would make a reference cycle, and then the run, with every result it
        #: still holds, would outlive the call until the cyclic collector found it.
        self._work: Callable[[Any], Coroutine[Any, Any, None]] = Run._worker

    # -- hooks for subclasses ------------------------------------------------

    def _reserve(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    async def _deliver(
        self,
        index: int,
        item: T,
        value: Any,
        error: Exception | None,
        attempts: int,
        started: float,
    ) -> bool:  # pragma: no cover - abstract
        """Hand on one result; return True to stop the run (fail fast)."""
        raise NotImplementedError

    def _all_workers_done(self) -> None:
        """Called once the last worker has exited."""

    # -- control -------------------------------------------------------------

    def stop(self) -> None:
        """Start nothing new and cancel the calls in flight."""
        self._stopping = True
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    def _abort(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
        self.stop()

    def _spawn(self, count: int = 1) -> None:
        assert self._tg is not None
        self._spawned += count
        self._live += count
        for _ in range(count):
            self._tg.start_soon(self._work, self)

    def _start(self) -> None:
        """Start the first workers: as many as the input says it holds, up to the width.

        Started together, their first calls start in one event-loop turn, as
        tasks created all at once would. Grown from one worker instead, the
        first calls of a fan-out over real requests go out over several turns,
        and so do their responses, for the rest of the run: each turn then
        handles fewer of them, and the client's CPU time per request was a few
        percent higher (docs: performance). An input that cannot tell (a
        generator) starts with one worker, and `_grow` adds more as items come.
        """
        self._spawn(max(1, min(self._width, self._known)))
        self._set_grow_at(self._known)

    def _grow(self) -> None:
        """Double the workers (up to the width): every one has an item, and more may follow.

        Workers pull items themselves, so a run that does not know its input's
        length learns that more items exist only by pulling them. Doubling
        once every worker is busy reaches 100 workers in about 8 event-loop
        turns, where one more per pulled item would take 100, and never starts
        more than twice as many workers as the items pulled.
        """
        self._spawn(min(self._spawned, self._width - self._spawned))
        self._set_grow_at(0)

    def _set_grow_at(self, known: int) -> None:
        # Grow once the last worker started takes an item, and not for the
        # items the input said it held: workers for those were started.
        spawned = self._spawned
        self._grow_at = max(known, spawned - 1) if spawned < self._width else math.inf

    @asynccontextmanager
    async def running(self, *, stop_on_exit: bool) -> AsyncIterator[None]:
        """Run the workers for the duration of the block.

        On leaving the block the run is waited for, or with ``stop_on_exit``
        cancelled. Afterwards the first fatal error (one that is not an item's
        failure: the input raising, KeyboardInterrupt, SystemExit) is re-raised
        as it is, and an expired ``deadline`` raises `DeadlineExceeded`.
        """
        _enter_loop(self._pool)
        try:
            async with self._running(stop_on_exit=stop_on_exit):
                yield
        finally:
            _leave_loop(self._pool)

    @asynccontextmanager
    async def _running(self, *, stop_on_exit: bool) -> AsyncIterator[None]:
        body_error: BaseException | None = None
        deadline = math.inf
        if self._deadline is not None:
            deadline = anyio.current_time() + self._deadline
        try:
            with anyio.CancelScope(deadline=deadline) as scope:
                if self._deadline is not None:
                    self._deadline_scope = scope
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    loop = loop_token()
                    self._now, self._tick = native_clock(loop), duration_clock(loop)
                    self._yield = native_checkpoint(loop)
                    if self._guarded is not None:
                        self._guarded.bind()
                    self._start()
                    try:
                        yield
                    except BaseException as exc:
                        # Re-raised below, unwrapped: a task group would put
                        # the body's own exception inside an ExceptionGroup.
                        body_error = exc
                        self.stop()
                    else:
                        if stop_on_exit:
                            self.stop()
                # A fatal error cancels the workers' scope, which holds the body
                # too; the body's resulting cancellation must not hide the error.
                if body_error is not None and not (
                    self._fatal is not None
                    and isinstance(body_error, anyio.get_cancelled_exc_class())
                ):
                    raise body_error
        finally:
            self._tg = None
            if self._owns_aiter and hasattr(self._aiter, "aclose"):
                with anyio.CancelScope(shield=True):
                    await self._aiter.aclose()
        if self._fatal is not None:
            raise self._fatal
        # ``cancel_called``, not ``cancelled_caught``: a worker thread cannot be
        # interrupted, so under trio the last calls may end, unobserved, after the
        # deadline without any checkpoint raising the cancellation.
        if scope.cancel_called and not self._failed_fast and self._deadline is not None:
            raise DeadlineExceeded(self._deadline, self._completed())

    def _completed(self) -> dict[int, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- the worker ----------------------------------------------------------

    async def _pull(self) -> Any:
        # Async iterables only: the worker pulls a plain iterator inline.
        await self._pull_lock.acquire()
        try:
            if self._exhausted:
                return _DONE
            try:
                item = await anext(self._aiter)
            except StopAsyncIteration:
                self._exhausted = True
                return _DONE
            return self._reserve(), item
        finally:
            self._pull_lock.release()

    async def _worker(self) -> None:
        cancelled = anyio.get_cancelled_exc_class()
        call, slots, stats, timeout = self._call, self._slots, self._stats, self._timeout
        guarded, timed, alone = self._guarded, self._timed, self._alone
        # Without a timeout, guarded attempts await the call itself: one coroutine less.
        call_each = call if timeout is None else self._call_timed
        deadline_scope = self._deadline_scope
        yield_now = self._yield
        _holding.set(self._pool)  # this task's own context: calls below run in a slot of it
        # A plain iterator is pulled inline (no coroutine per item), and a map
        # success with no observer is stored inline (no `_deliver` coroutine):
        # each coroutine avoided saves ~0.3 µs per item (docs: performance).
        sync_items = self._aiter is None
        reserve = self._reserve
        results = self._results_inline()
        channel = self._channel_inline()
        count = 0
        try:
            while not self._stopping:
                if sync_items:
                    if self._exhausted:
                        return
                    try:
                        item = next(self._iter)
                    except StopIteration:
                        self._exhausted = True
                        return
                    except BaseException as exc:
                        self._abort(exc)
                        return
                    if results is not None:
                        results.append(PENDING)
                        index = len(results) - 1
                    else:
                        index = reserve()
                else:
                    try:
                        pulled = await self._pull()
                    except cancelled:
                        raise
                    except BaseException as exc:
                        self._abort(exc)
                        return
                    if pulled is _DONE:
                        return
                    index, item = pulled
                # The width first: an int comparison the interpreter specialises,
                # and once at full width (most of a run) the only one.
                if self._spawned < self._width and index >= self._grow_at:
                    self._grow()
                value: Any
                error: Exception | None
                try:
                    if guarded is None:
                        # The fast path, inlined: one slot, one attempt.
                        if not alone and not slots.try_acquire():  # no coroutine when free
                            await slots.acquire()
                        # Timed from the start of the call, not of the wait for a slot.
                        started = self._now() if timed else 0.0
                        attempts = 1
                        # The bookkeeping of `_attempts.guarded`, inlined: an extra
                        # coroutine per item costs ~20%.
                        stats.started += 1
                        error = None
                        try:
                            if timeout is None:
                                value = await call(item)
                            else:
                                value = await self._call_timed(item)
                        except Misuse:
                            stats.cancelled += 1
                            raise  # stops the run, below
                        except Exception as exc:
                            value, error = None, shed_frames(exc, ENGINE_FRAMES)
                        except BaseException:
                            stats.cancelled += 1
                            raise
                        finally:
                            if not alone:
                                slots.release()
                        if error is None:
                            stats.succeeded += 1
                            if results is not None and (
                                deadline_scope is None or not deadline_scope.cancel_called
                            ):
                                results[index] = value
                                count += 1
                                if count % CHECKPOINT_EVERY == 0:
                                    await yield_now()
                                continue
                        else:
                            stats.failed += 1
                        if (
                            channel is not None
                            and (deadline_scope is None or not deadline_scope.cancel_called)
                            and channel.try_put(
                                make_outcome(index, item, value, error, 1, self._now() - started)
                            )
                        ):
                            # A stream outcome with room in the buffer: no coroutine.
                            count += 1
                            if count % CHECKPOINT_EVERY == 0:
                                await yield_now()
                            continue
                    else:
                        # Every attempt under the limits, the shared pause and the retries.
                        value, error, attempts, started = await attempts_of(
                            call_each, item, slots, stats, guarded, self._now
                        )
                        if error is not None:
                            shed_frames(error, ENGINE_FRAMES)
                        if (
                            error is None
                            and results is not None
                            and (deadline_scope is None or not deadline_scope.cancel_called)
                        ):
                            # A map success with no observer, stored inline as above.
                            results[index] = value
                            # A call under limits or retries is I/O, so yielding after each
                            # one costs little: the next call then starts in a later turn,
                            # with the other workers' next calls, instead of right after
                            # this one's response was handled. Like work run together keeps
                            # a client library's large code in the CPU's caches: 2-3% less
                            # CPU per request with the OpenAI SDK (docs: performance).
                            await yield_now()
                            continue
                except cancelled:
                    raise
                except BaseException as exc:
                    if is_cancellation(exc, cancelled):
                        raise
                    self._abort(exc)
                    return
                if deadline_scope is not None and deadline_scope.cancel_called:
                    # A sync call that outlived the deadline in its thread: its
                    # late result is dropped on every backend, as asyncio does.
                    return
                try:
                    stop = await self._deliver(index, item, value, error, attempts, started)
                except cancelled:
                    raise
                except BaseException as exc:  # the on_outcome hook failed
                    self._abort(exc)
                    return
                if stop:
                    self._failed_fast = True
                    self.stop()
                    return
                count += 1
                if guarded is not None or count % CHECKPOINT_EVERY == 0:
                    # After a guarded call, always (see above).
                    await yield_now()
        finally:
            self._live -= 1
            if self._live == 0:
                self._all_workers_done()

    def _results_inline(self) -> list[Any] | None:
        """The collector's list, if a success may be stored in it directly.

        The worker then also reserves an item's place itself, by appending
        `PENDING` (what `Collector.reserve` does, without a call per item).
        """
        return None

    def _channel_inline(self) -> Channel[Outcome[T, R]] | None:
        """The channel an outcome may be put in directly, bypassing `_deliver`."""
        return None

    async def _call_timed(self, item: T) -> Any:
        # Only for runs with a timeout: the others await the call itself.
        timeout = self._timeout
        with anyio.fail_after(timeout) as scope:
            value = await self._call(item)
        if self._now() >= scope.deadline:
            # A call in a worker thread cannot be interrupted; it is waited
            # for, then its late result is discarded as the timeout demands.
            raise TimeoutError(f"call took longer than its timeout of {timeout:g}s")
        return value

    _timed = False
    _deadline_scope: anyio.CancelScope | None = None
    #: How many items the input said it held when the run began (0: it cannot tell).
    _known = 0
    #: The index of the pulled item on which the workers double (`_grow`).
    _grow_at: float = math.inf


class MapRun(Run[T, R]):
    """A run whose results are gathered by index for ``map`` and ``gather``."""

    def __init__(
        self, call: Callable[[T], Awaitable[R]], items: Any, *, collector: Collector, **options: Any
    ) -> None:
        super().__init__(call, items, **options)
        self.collector = collector
        self._reserve = collector.reserve  # type: ignore[method-assign]

    async def _deliver(
        self,
        index: int,
        item: T,
        value: Any,
        error: Exception | None,
        attempts: int,
        started: float,
    ) -> bool:
        if self._observer is not None:
            elapsed = self._now() - started
            self._observer(make_outcome(index, item, value, error, attempts, elapsed))
        if error is None:
            self.collector.results[index] = value
            return False
        return self.collector.fail(index, error)

    def _results_inline(self) -> list[Any] | None:
        # Without an observer, delivering a success is exactly this store.
        return self.collector.results if self._observer is None else None

    def _completed(self) -> dict[int, Any]:
        return self.collector.completed()


class StreamRun(Run[T, R]):
    """A run whose results are sent, as `Outcome` objects, to a consumer."""

    _timed = True

    def __init__(self, call: Callable[[T], Awaitable[R]], items: Any, **options: Any) -> None:
        super().__init__(call, items, **options)
        self._reserve = itertools.count().__next__  # type: ignore[method-assign]
        # Room for a few outcomes per worker lets writers refill in bursts: two
        # per worker waiting, two more in the batch the consumer is reading.
        self.channel: Channel[Outcome[T, R]] = Channel(2 * self._width)
        if (
            self._iter is not None
            and self._guarded is None
            and self._timeout is None
            and self._observer is None
        ):
            # Shared by the workers: one call pulls an item and numbers it.
            # `islice` lets go of the input once it is exhausted or has raised, so
            # workers pulling afterwards never call the user's iterator again.
            self._numbered = enumerate(itertools.islice(self._iter, None))
            self._work = StreamRun._plain_worker

    async def _deliver(
        self,
        index: int,
        item: T,
        value: Any,
        error: Exception | None,
        attempts: int,
        started: float,
    ) -> bool:
        outcome = make_outcome(index, item, value, error, attempts, self._now() - started)
        if self._observer is not None:
            self._observer(outcome)
        await self.channel.put(outcome)
        return False

    def _channel_inline(self) -> Channel[Outcome[T, R]] | None:
        # Without an observer, delivering is exactly this put (it never stops the run).
        return self.channel if self._observer is None else None

    async def _plain_worker(self) -> None:
        """`Run._worker` for the commonest stream: a plain iterable, no limits, no observer.

        The same steps in the same order, minus every branch such a stream
        cannot take; at about 3 µs per item every branch and attribute read
        shows (docs: performance). One difference: it yields to the scheduler
        only where it must wait (a slot, a full buffer) or where the call does.
        The buffer is bounded, so workers whose calls never suspend still wait
        for the consumer after at most ``2 * width`` outcomes between them,
        while the periodic checkpoint `_worker` takes would cost a task switch
        per ``CHECKPOINT_EVERY`` items on top of the call's own.
        """
        cancelled = anyio.get_cancelled_exc_class()
        call, slots, stats = self._call, self._slots, self._stats
        deadline_scope, channel, now = self._deadline_scope, self.channel, self._tick
        capacity = channel.capacity
        # A one-shot Fan (module-level `anyfan.stream`) is reachable by nobody
        # else: no other run shares its slots, and nobody can read its stats,
        # so neither is kept (~0.1 µs per item). Any other Fan keeps both.
        shared = not self._alone
        _holding.set(self._pool)  # this task's own context: calls below run in a slot of it
        # Once at full width it stays there: stop asking.
        growing = self._spawned < self._width
        try:
            # Through a local: checked on the attribute itself, a type checker would
            # take the attribute for false from here on, and the check below for dead.
            stopped = self._stopping
            if stopped:
                return
            try:
                # A `for` loop over the shared iterator: its items come without a
                # call to `next` each. Any worker may end it; `islice` (see
                # `__init__`) then keeps every later pull away from the input.
                for index, item in self._numbered:
                    if growing and index >= self._grow_at:
                        self._grow()
                        growing = self._spawned < self._width
                    value: Any
                    error: Exception | None
                    if shared:
                        if not slots.try_acquire():
                            await slots.acquire()
                        stats.started += 1
                    started = now()
                    try:
                        value = await call(item)
                    except Misuse:
                        if shared:
                            stats.cancelled += 1
                        raise  # stops the run, below
                    except Exception as exc:
                        value, error = None, shed_frames(exc, ENGINE_FRAMES)
                        if shared:
                            stats.failed += 1
                    except BaseException:
                        if shared:
                            stats.cancelled += 1
                        raise
                    else:
                        error = None
                        if shared:
                            stats.succeeded += 1
                    finally:
                        if shared:
                            slots.release()
                    if deadline_scope is not None and deadline_scope.cancel_called:
                        return  # a late result (see `_worker`)
                    # `make_outcome`, inlined: the call cost ~0.06 µs per item.
                    outcome: Any = OutcomeDraft()
                    outcome.index = index
                    outcome.item = item
                    outcome.value = value
                    outcome.error = error
                    outcome.attempts = 1
                    outcome.elapsed = now() - started
                    outcome.__class__ = Outcome
                    # `channel.try_put`, inlined as `Channel` allows: ~0.08 µs per item.
                    entries = channel.entries
                    if len(entries) < capacity:
                        entries.append(outcome)
                        if channel.reader_waiting is not None:
                            channel.wake_reader()
                    else:
                        await channel.put(outcome)
                    # Checked before the loop pulls again, as `while` would: a
                    # stopped run takes nothing more from the input.
                    if self._stopping:
                        return
            except cancelled:
                raise
            except BaseException as exc:
                # The input raised, or what must stop the run (a `Misuse`, a
                # KeyboardInterrupt from the call); an item's own errors are kept above.
                if is_cancellation(exc, cancelled):
                    raise
                self._abort(exc)
                return
        finally:
            self._live -= 1
            if self._live == 0:
                self._all_workers_done()

    def _all_workers_done(self) -> None:
        self.channel.close()

    def _completed(self) -> dict[int, Any]:
        # The consumer has already been handed everything that finished.
        return {}


class Outcomes(Generic[T, R]):
    """The async iterator ``stream`` yields: outcomes as they finish, or in input order."""

    def __init__(self, channel: Channel[Outcome[T, R]], *, ordered: bool) -> None:
        self._receive = channel
        self._reorder: Reorderer[Outcome[T, R]] | None = Reorderer() if ordered else None
        self._ready: deque[Outcome[T, R]] = deque()
        self._reader: AsyncGeneratorType[Outcome[T, R], None] | None = None

    def __aiter__(self) -> AsyncIterator[Outcome[T, R]]:
        if self._reorder is not None:
            return self
        # Unordered, the channel's reader is the iterator: no coroutine per
        # outcome. One reader serves every ``async for`` until it ends (drained,
        # or ended by an exception); `aclose` closes one left unfinished.
        reader = self._reader
        if reader is None or reader.ag_frame is None:
            reader = self._reader = cast(
                "AsyncGeneratorType[Outcome[T, R], None]", self._receive.reader()
            )
        return reader

    async def __anext__(self) -> Outcome[T, R]:
        reorder = self._reorder
        if reorder is None:
            return await anext(self._receive)
        while not self._ready:
            outcome = await anext(self._receive)
            self._ready.extend(reorder.push(outcome.index, outcome))
        return self._ready.popleft()

    async def aclose(self) -> None:
        """Close the reader an ``async for`` left unfinished, as the stream ends.

        Not one that another task is still inside: it ends by itself once the
        stream is closed. The event loop would otherwise close a reader left
        at a ``break`` when it is collected (trio warns that it had to).
        """
        reader = self._reader
        if reader is not None and reader.ag_await is None:
            await reader.aclose()


#: The engine's frames an item's error passes through, dropped from its
#: traceback before the error is kept for the caller (`shed_frames`).
ENGINE_FRAMES: Final = ATTEMPT_FRAMES | {
    Run._worker.__code__,
    Run._call_timed.__code__,
    StreamRun._plain_worker.__code__,
}
