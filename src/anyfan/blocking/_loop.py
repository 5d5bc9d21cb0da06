"""An event loop in a background thread, and the jobs other threads hand to it.

The facade never touches the calling thread's own event loop, if it has one:
every call runs on a loop that lives in a thread of its own. That is what lets
blocking code call anyfan from a Jupyter cell or from inside another async
framework, where `asyncio.run` refuses to start.

Handing a call over costs one thread-safe "call soon" on the loop and one lock
release back; no round trip is spent waiting for the loop to acknowledge it.
"""

from __future__ import annotations

import atexit
import contextvars
import enum
import importlib.util
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Generic, Literal, TypeAlias, TypeVar

import anyio

from .._core import Misuse

try:
    import sniffio
except ImportError:  # pragma: no cover - anyio works without sniffio
    sniffio = None  # type: ignore[assignment]

R = TypeVar("R")

Backend: TypeAlias = Literal["asyncio", "trio"]
BACKENDS: Final = ("asyncio", "trio")

#: A waiting thread wakes this often to let Python run signal handlers. A
#: signal may land on any thread, so this bounds how late Ctrl-C is noticed.
POLL_INTERVAL = 0.1
#: After Ctrl-C, how long the caller lets its cancelled work wind down before
#: re-raising. Sync functions in worker threads cannot be interrupted, so the
#: wait is bounded rather than complete.
CANCEL_GRACE = 0.5
#: At interpreter exit, how long to wait for each loop thread to finish.
EXIT_TIMEOUT = 5.0


class _State(enum.Enum):
    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


def check_backend(backend: object) -> Backend:
    """Return ``backend`` if it names a usable backend, else raise naming the problem."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'asyncio' or 'trio', got {backend!r}")
    if backend == "trio" and importlib.util.find_spec("trio") is None:
        raise ImportError("backend='trio' needs trio; install it with: pip install 'anyfan[trio]'")
    return backend


def wait_for(lock: threading.Lock, timeout: float | None = None) -> bool:
    """Acquire ``lock``, waking regularly so that a Ctrl-C is raised in time.

    Returns whether the lock was acquired before ``timeout`` (``None``: wait
    for as long as it takes).
    """
    if timeout is not None:
        return lock.acquire(timeout=timeout)
    while not lock.acquire(timeout=POLL_INTERVAL):
        pass
    return True


class Job(Generic[R]):
    """One ``await fn(*args, **kwargs)`` handed to a `Loop` by another thread.

    It runs in a copy of the submitting thread's context, so context variables
    set by the caller are visible to the call (and to worker threads it uses).
    """

    __slots__ = (
        "_args",
        "_cancel_requested",
        "_context",
        "_done",
        "_error",
        "_finished",
        "_fn",
        "_kwargs",
        "_loop",
        "_on_done",
        "_scope",
        "_value",
    )

    def __init__(
        self,
        loop: Loop,
        fn: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        on_done: Callable[[], object] | None,
        *,
        inherit_context: bool = True,
    ) -> None:
        self._loop = loop
        self._fn: Callable[..., Awaitable[R]] | None = fn
        self._args = args
        self._kwargs = kwargs
        self._on_done = on_done
        self._context = contextvars.copy_context() if inherit_context else contextvars.Context()
        self._done = threading.Lock()
        self._done.acquire()
        self._finished = False
        self._value: R | None = None
        self._error: BaseException | None = None
        self._scope: anyio.CancelScope | None = None
        self._cancel_requested = False

    @property
    def done(self) -> bool:
        """Whether the job has finished, one way or another."""
        return self._finished

    @property
    def error(self) -> BaseException | None:
        """The error a finished job raised, if any."""
        return self._error

    def finish(self, value: R | None, error: BaseException | None) -> None:
        """Record the outcome and wake whoever waits; later calls are ignored."""
        if self._finished:
            return
        self._finished = True
        self._value, self._error = value, error
        # Drop the call's arguments now: a finished job may be kept around.
        self._fn, self._args, self._kwargs, self._scope = None, (), {}, None
        self._done.release()
        if self._on_done is not None:
            self._on_done()

    def cancel(self) -> None:
        """Ask the loop to cancel the job; safe from any thread, never raises."""
        if not self._finished:
            self._loop.post(self._cancel_in_loop)

    def _cancel_in_loop(self) -> None:
        self._cancel_requested = True
        if self._scope is not None:
            self._scope.cancel()

    def wait_done(self, timeout: float | None = None) -> bool:
        """Wait for the job to finish; return whether it did within ``timeout``.

        Any number of threads may wait. If the wait is interrupted (Ctrl-C),
        the job is cancelled and given `CANCEL_GRACE` seconds to wind down
        before the interruption is re-raised.
        """
        try:
            acquired = wait_for(self._done, timeout)
        except BaseException:
            self.cancel()
            if self._done.acquire(timeout=CANCEL_GRACE):
                self._done.release()
            raise
        if acquired:
            self._done.release()
        return acquired

    def result(self) -> R:
        """Return the value, or raise the error, of a finished job."""
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def wait(self) -> R:
        """Wait for the job, then return its value or raise its error."""
        self.wait_done()
        return self.result()

    async def run(self) -> None:
        """Run the call on the loop (called as a task there)."""
        loop = self._loop
        try:
            if self._cancel_requested:
                # Cancelled before it started: do not start it at all.
                self.finish(None, RuntimeError("the call was cancelled by its caller"))
                return
            assert self._fn is not None
            fn, args, kwargs = self._fn, self._args, self._kwargs
            with anyio.CancelScope() as scope:
                self._scope = scope
                value = await fn(*args, **kwargs)
            if scope.cancelled_caught:
                self.finish(None, RuntimeError("the call was cancelled by its caller"))
            else:
                self.finish(value, None)
        except loop._cancelled_exc:
            # Only the loop shutting down cancels from outside the job's own scope.
            self.finish(None, loop.closed_error())
            raise
        except BaseException as exc:
            # Everything else, KeyboardInterrupt included, belongs to the caller.
            self.finish(None, exc)
        finally:
            loop._running.discard(self)


class Loop:
    """An event loop running in a background thread, for calling async code from sync code.

    The thread starts on first use and stops on `close`, or at interpreter
    exit, cancelling whatever still runs. Every method is thread-safe.

    Args:
        backend: ``"asyncio"`` (the default) or ``"trio"``.
        backend_options: Passed to `anyio.run`, e.g. ``{"use_uvloop": True}``.
    """

    def __init__(
        self, backend: Backend = "asyncio", backend_options: Mapping[str, Any] | None = None
    ) -> None:
        self._backend = check_backend(backend)
        if backend_options is not None and not isinstance(backend_options, Mapping):
            raise TypeError(f"backend_options must be a mapping, got {backend_options!r}")
        self._backend_options = dict(backend_options or {})
        self._reset(closed=False)
        _all_loops.add(self)

    def _reset(self, *, closed: bool) -> None:
        self._lock = threading.Lock()
        self._state = _State.CLOSED if closed else _State.IDLE
        self._thread: threading.Thread | None = None
        self._thread_id: int | None = None
        self._post: Callable[..., object] | None = None
        self._spawn: Callable[[Job[Any]], None] | None = None
        self._running: set[Job[Any]] = set()  # touched on the loop thread only
        self._cancelled_exc: type[BaseException] = BaseException
        self._stop: anyio.Event | None = None
        # Jobs handed over before the loop was ready, and jobs posted but not
        # yet started; whatever is left in them when the loop ends is failed.
        self._backlog: list[Job[Any]] = []
        self._pending: set[Job[Any]] = set()

    def __repr__(self) -> str:
        return f"Loop({self._backend!r}, state={self._state.value!r})"

    def __enter__(self) -> Loop:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def backend(self) -> Backend:
        """The backend the loop runs on."""
        return self._backend

    @property
    def closed(self) -> bool:
        """Whether `close` was called (or the interpreter is exiting)."""
        return self._state in (_State.CLOSING, _State.CLOSED)

    def in_loop_thread(self) -> bool:
        """Whether the calling thread is this loop's own thread."""
        return threading.get_ident() == self._thread_id

    def closed_error(self) -> RuntimeError:
        """Return the error calls get when the loop is closed under them."""
        return RuntimeError(f"anyfan.blocking.{self!r} was closed")

    def check_caller(self) -> None:
        """Raise instead of deadlocking when the loop's own thread would wait on the loop."""
        if self.in_loop_thread():
            raise Misuse(
                "a blocking anyfan call was made from its own event loop's thread, where it "
                "would wait forever; in async code, await anyfan.map/gather/stream instead"
            )

    def call(self, fn: Callable[..., Awaitable[R]], /, *args: Any, **kwargs: Any) -> R:
        """Run ``await fn(*args, **kwargs)`` on the loop and return its result.

        Blocks the calling thread until done; exceptions are re-raised in it.
        Ctrl-C cancels the call and re-raises `KeyboardInterrupt`.
        """
        self.check_caller()
        return self.submit(fn, args, kwargs).wait()

    def submit(
        self,
        fn: Callable[..., Awaitable[R]],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        on_done: Callable[[], object] | None = None,
        inherit_context: bool = True,
    ) -> Job[R]:
        """Start ``await fn(*args, **kwargs)`` on the loop and return its `Job` at once.

        ``on_done`` is called once the job has finished, on whichever thread
        finished it; it must be quick and must not raise. With
        ``inherit_context=False`` the job runs in an empty context instead of
        a copy of the caller's.
        """
        job = Job(self, fn, args, kwargs or {}, on_done, inherit_context=inherit_context)
        with self._lock:
            state = self._state
            if state is _State.RUNNING:
                assert self._post is not None
                self._pending.add(job)
                self._post(self._start, job)
            elif state is _State.IDLE or state is _State.STARTING:
                self._backlog.append(job)
                if state is _State.IDLE:
                    self._start_thread()
            else:
                raise self.closed_error()
        return job

    def post(self, callback: Callable[[], object]) -> bool:
        """Have the loop call ``callback()`` soon; return False if it no longer runs.

        Safe from any thread, the loop's own included. ``callback`` must not raise.
        """
        with self._lock:
            post = self._post
            if post is None:
                return False
            post(callback)
            return True

    def close(self) -> None:
        """Cancel whatever still runs, stop the loop and wait for its thread to end.

        Calls still waiting on the loop raise `RuntimeError`. Closing twice is
        fine; a closed loop cannot be restarted.
        """
        self._close(join=True)

    def _close(self, *, join: bool, timeout: float | None = None) -> None:
        with self._lock:
            state = self._state
            if state is _State.IDLE:
                self._state = _State.CLOSED
            elif state is _State.RUNNING or state is _State.STARTING:
                self._state = _State.CLOSING
                if self._stop is not None and self._post is not None:
                    self._post(self._stop.set)
            thread = self._thread
        if join and thread is not None and thread.ident != threading.get_ident():
            thread.join(timeout)

    # -- the loop thread -----------------------------------------------------

    def _start_thread(self) -> None:
        # Called with the lock held. The thread is a daemon so that a hung call
        # cannot keep the process alive; `_close_all` still stops it at exit.
        self._state = _State.STARTING
        self._thread = threading.Thread(
            target=self._thread_main, name=f"anyfan-{self._backend}-loop", daemon=True
        )
        self._thread.start()

    def _thread_main(self) -> None:
        error: BaseException | None = None
        try:
            anyio.run(self._serve, backend=self._backend, backend_options=self._backend_options)
        except BaseException as exc:  # bad backend options, or a crash of the loop itself
            error = exc
        with self._lock:
            leftovers = [*self._backlog, *self._pending]
            self._backlog, self._pending = [], set()
            self._post = self._spawn = self._stop = None
            self._thread_id = None
            if self._state is _State.STARTING:
                # It never got going: let the next call try again (and report why).
                self._state = _State.IDLE
                self._thread = None
            else:
                self._state = _State.CLOSED
        for job in leftovers:
            job.finish(None, error if error is not None else self.closed_error())

    async def _serve(self) -> None:
        # Jobs are spawned as native tasks: anyio's task groups cost several
        # times more per task, and a blocking call pays that on every call.
        stop = anyio.Event()
        if self._backend == "trio":
            import trio

            async with trio.open_nursery() as nursery:

                def spawn_trio(job: Job[Any]) -> None:
                    job._context.run(nursery.start_soon, job.run)

                post = trio.lowlevel.current_trio_token().run_sync_soon
                await self._host(post, spawn_trio, stop)
                nursery.cancel_scope.cancel()
        else:
            import asyncio

            loop = asyncio.get_running_loop()
            tasks: set[asyncio.Task[None]] = set()

            def spawn_asyncio(job: Job[Any]) -> None:
                if sniffio is not None:
                    # anyio inside the job must not be misled by the caller's context.
                    job._context.run(sniffio.current_async_library_cvar.set, "asyncio")
                task = loop.create_task(job.run(), context=job._context)
                tasks.add(task)
                task.add_done_callback(tasks.discard)

            await self._host(loop.call_soon_threadsafe, spawn_asyncio, stop)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
        # A task cancelled before its first step never ran its job at all.
        for job in list(self._running):
            job.finish(None, self.closed_error())

    async def _host(
        self, post: Callable[..., object], spawn: Callable[[Job[Any]], None], stop: anyio.Event
    ) -> None:
        self._cancelled_exc = anyio.get_cancelled_exc_class()
        with self._lock:
            self._thread_id = threading.get_ident()
            self._post, self._spawn, self._stop = post, spawn, stop
            backlog, self._backlog = self._backlog, []
            if self._state is _State.STARTING:
                self._state = _State.RUNNING
            else:
                stop.set()  # closed while starting
            self._pending.update(backlog)
        # Popped, not iterated: this frame waits below for the loop's whole life, and
        # a local still naming a job would keep its result alive as long.
        while backlog:
            self._start(backlog.pop(0))
        await stop.wait()
        with self._lock:
            self._post = None
        self._spawn = None

    def _start(self, job: Job[Any]) -> None:
        # A loop callback: it must never raise into the loop.
        with self._lock:
            self._pending.discard(job)
        spawn = self._spawn
        if spawn is None:
            job.finish(None, self.closed_error())
            return
        self._running.add(job)
        try:
            spawn(job)
        except BaseException as exc:  # pragma: no cover - defensive: spawning failing
            job.finish(None, exc)


# -- process-wide state ------------------------------------------------------

_all_loops: weakref.WeakSet[Loop] = weakref.WeakSet()
_defaults: dict[str, Loop] = {}
_defaults_lock = threading.Lock()


def default_loop(backend: Backend = "asyncio") -> Loop:
    """Return the process-wide `Loop` for ``backend``, made on first use.

    The module-level ``map``, ``gather`` and ``stream`` run on it. If it has
    been closed, a fresh one replaces it.
    """
    backend = check_backend(backend)
    with _defaults_lock:
        loop = _defaults.get(backend)
        if loop is None or loop.closed:
            loop = _defaults[backend] = Loop(backend)
        return loop


def resolve_loop(
    backend: Backend | None,
    backend_options: Mapping[str, Any] | None,
    loop: Loop | None,
    *,
    private: bool,
) -> tuple[Loop, bool]:
    """Pick the loop a facade object runs on; return it and whether the object owns it."""
    if loop is not None:
        if backend is not None or backend_options is not None:
            raise ValueError("pass either loop= or backend=/backend_options=, not both")
        if not isinstance(loop, Loop):
            raise TypeError(f"loop must be an anyfan.blocking.Loop, got {loop!r}")
        return loop, False
    if private:
        return Loop(backend or "asyncio", backend_options), True
    if backend_options is not None:
        raise ValueError("backend_options needs a Loop of your own: pass loop=Loop(...)")
    return default_loop(backend or "asyncio"), False


def _close_all() -> None:
    # Runs as the interpreter exits, before it waits for non-daemon threads:
    # anyio's asyncio worker threads are non-daemon and end only with their loop.
    for loop in list(_all_loops):
        loop._close(join=True, timeout=EXIT_TIMEOUT)


def _after_fork() -> None:
    # A forked child has none of the parent's threads: start afresh on demand.
    for loop in list(_all_loops):
        loop._reset(closed=loop.closed)


_register_at_exit: Callable[[Callable[[], object]], object] = getattr(
    threading, "_register_atexit", atexit.register
)
_register_at_exit(_close_all)
if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork)
