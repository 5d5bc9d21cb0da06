"""The background loop: lazy start, hand-over of calls, errors, closing, Ctrl-C."""

from __future__ import annotations

import contextvars
import threading
import traceback
import weakref
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import pytest

from anyfan.blocking import Loop, default_loop
from anyfan.blocking import _loop as loop_module
from anyfan.blocking._loop import resolve_loop

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


async def echo(value: Any) -> Any:
    await anyio.sleep(0)
    return value


async def fail_deep() -> None:
    await anyio.sleep(0)
    raise ValueError("deep inside")


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``fn`` in a new thread; the list receives its result or exception."""
    box: list[Any] = []

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, box


def test_starts_on_first_use_and_runs_calls(facade_loop: Loop, backend_name: str) -> None:
    assert "idle" in repr(facade_loop)
    assert facade_loop.backend == backend_name
    assert facade_loop.call(echo, 42) == 42
    assert "running" in repr(facade_loop)
    assert facade_loop.call(echo, value="kw") == "kw"
    assert not facade_loop.closed


def test_errors_reach_the_caller_with_the_frames_that_raised(facade_loop: Loop) -> None:
    with pytest.raises(ValueError, match="deep inside") as info:
        facade_loop.call(fail_deep)
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert names[0] == "test_errors_reach_the_caller_with_the_frames_that_raised"
    assert names[-1] == "fail_deep"


class Result:
    """A value that can be weakly referenced."""


async def make_result() -> Result:
    await anyio.sleep(0)
    return Result()


def test_results_are_not_kept_once_the_caller_drops_them(facade_loop: Loop) -> None:
    # The first call also starts the loop: its job waited in the backlog.
    for _ in range(2):
        result = weakref.ref(facade_loop.call(make_result))
        assert result() is None


def test_keyboard_interrupt_raised_by_the_call_reaches_the_caller(facade_loop: Loop) -> None:
    async def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        facade_loop.call(interrupt)
    assert facade_loop.call(echo, 1) == 1


def test_calling_from_the_loops_own_thread_raises_instead_of_deadlocking(
    facade_loop: Loop,
) -> None:
    async def nested() -> Any:
        return facade_loop.call(echo, 1)

    with pytest.raises(RuntimeError, match="own event loop's thread"):
        facade_loop.call(nested)
    assert not facade_loop.in_loop_thread()


def test_context_variables_reach_async_code_and_its_worker_threads(facade_loop: Loop) -> None:
    async def read() -> tuple[str, str]:
        in_thread = await anyio.to_thread.run_sync(request_id.get)
        return request_id.get(), in_thread

    token = request_id.set("r-17")
    try:
        assert facade_loop.call(read) == ("r-17", "r-17")
    finally:
        request_id.reset(token)
    assert facade_loop.call(read) == ("unset", "unset")


def test_close_cancels_calls_in_flight(facade_loop: Loop) -> None:
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await anyio.sleep_forever()

    thread, box = in_thread(lambda: facade_loop.call(forever))
    assert started.wait(10)
    facade_loop.close()
    thread.join(10)
    assert isinstance(box[0], RuntimeError)
    assert "was closed" in str(box[0])
    assert facade_loop.closed
    assert "closed" in repr(facade_loop)


def test_a_closed_loop_refuses_calls_and_closing_twice_is_fine(facade_loop: Loop) -> None:
    assert facade_loop.call(echo, 1) == 1
    with facade_loop:
        pass
    facade_loop.close()
    with pytest.raises(RuntimeError, match="was closed"):
        facade_loop.call(echo, 1)
    assert facade_loop.post(lambda: None) is False


def test_closing_an_unused_loop_never_starts_it() -> None:
    loop = Loop()
    loop.close()
    assert loop.closed
    assert loop._thread is None
    with pytest.raises(RuntimeError, match="was closed"):
        loop.submit(echo, (1,))


def test_close_while_starting_fails_the_waiting_calls(
    monkeypatch: pytest.MonkeyPatch, anyio_backend: Any
) -> None:
    gate = threading.Event()
    real_run = anyio.run

    def gated_run(*args: Any, **kwargs: Any) -> Any:
        gate.wait(10)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(anyio, "run", gated_run)
    loop = Loop(*anyio_backend)
    job = loop.submit(echo, (1,))
    assert "starting" in repr(loop)
    loop._close(join=False)
    gate.set()
    with pytest.raises(RuntimeError, match="was closed"):
        job.wait()
    loop.close()
    assert "closed" in repr(loop)


def test_a_call_cancelled_before_it_starts_never_runs(facade_loop: Loop) -> None:
    ran = threading.Event()
    loop_held, release_loop = threading.Event(), threading.Event()

    async def mark() -> None:
        ran.set()

    async def hold_the_loop() -> None:
        loop_held.set()
        release_loop.wait(10)  # blocks the loop thread on purpose

    holder = facade_loop.submit(hold_the_loop)
    assert loop_held.wait(10)
    job = facade_loop.submit(mark)  # both the start and the cancel queue up behind the holder
    job.cancel()
    release_loop.set()
    with pytest.raises(RuntimeError, match="cancelled by its caller"):
        job.wait()
    holder.wait()
    assert not ran.is_set()
    assert job.done
    job.cancel()  # finished: nothing to do
    assert isinstance(job.error, RuntimeError)


def test_a_call_cancelled_while_it_runs_is_stopped(facade_loop: Loop) -> None:
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await anyio.sleep_forever()

    job = facade_loop.submit(forever)
    assert started.wait(10)
    job.cancel()
    with pytest.raises(RuntimeError, match="cancelled by its caller"):
        job.wait()


def test_waiting_with_a_timeout_reports_whether_the_job_finished(facade_loop: Loop) -> None:
    release = facade_loop.call(make_event)
    job = facade_loop.submit(release.wait)
    assert job.wait_done(timeout=0) is False
    assert facade_loop.post(release.set)
    assert job.wait_done() is True
    assert job.wait_done(timeout=0) is True  # waiting again is fine


async def make_event() -> anyio.Event:
    return anyio.Event()


def test_long_waits_wake_up_to_check_for_signals(
    facade_loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop_module, "POLL_INTERVAL", 0.001)

    async def slow() -> str:
        await anyio.sleep(0.05)
        return "done"

    assert facade_loop.call(slow) == "done"


def test_ctrl_c_cancels_the_call_and_the_loop_stays_usable(
    facade_loop: Loop, ctrl_c: Callable[..., Awaitable[None]]
) -> None:
    cancelled = threading.Event()

    async def interrupted() -> None:
        await ctrl_c()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise

    with pytest.raises(KeyboardInterrupt):
        facade_loop.call(interrupted)
    assert cancelled.wait(10)
    assert facade_loop.call(echo, "still usable") == "still usable"


def test_bad_backend_options_fail_every_call_until_closed(anyio_backend: Any) -> None:
    # asyncio ignores unknown options but chokes on a loop factory that is not callable.
    bad = {"loop_factory": 42} if anyio_backend[0] == "asyncio" else {"no_such_option": True}
    loop = Loop(anyio_backend[0], bad)
    for _ in range(2):
        with pytest.raises(TypeError):
            loop.call(echo, 1)
        assert "idle" in repr(loop)
    loop.close()


def test_backend_is_checked_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="'asyncio' or 'trio'"):
        Loop("curio")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="backend_options must be a mapping"):
        Loop("asyncio", [("use_uvloop", True)])  # type: ignore[arg-type]
    monkeypatch.setattr(loop_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"anyfan\[trio\]"):
        Loop("trio")


def test_default_loop_is_one_per_backend_and_replaced_once_closed() -> None:
    first = default_loop()
    assert default_loop("asyncio") is first
    assert first.backend == "asyncio"
    first.close()
    second = default_loop()
    assert second is not first
    assert second.call(echo, 3) == 3


def test_resolve_loop_rejects_contradictory_choices() -> None:
    loop = Loop()
    with pytest.raises(ValueError, match="either loop= or backend="):
        resolve_loop("trio", None, loop, private=True)
    with pytest.raises(TypeError, match=r"must be an anyfan\.blocking\.Loop"):
        resolve_loop(None, None, "asyncio", private=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a Loop of your own"):
        resolve_loop(None, {"use_uvloop": True}, None, private=False)
    assert resolve_loop(None, None, loop, private=True) == (loop, False)
    own, owned = resolve_loop(None, None, None, private=True)
    assert owned
    assert own is not loop
    assert own.backend == "asyncio"
    assert resolve_loop("asyncio", None, None, private=False) == (default_loop(), False)


def test_exit_hook_closes_every_running_loop(
    facade_loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    facade_loop.call(echo, 1)
    thread = facade_loop._thread
    assert thread is not None
    monkeypatch.setattr(loop_module, "_all_loops", weakref.WeakSet([facade_loop]))
    loop_module._close_all()
    assert facade_loop.closed
    assert not thread.is_alive()


def test_after_fork_a_running_loop_starts_afresh_and_a_closed_one_stays_closed(
    facade_loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    facade_loop.call(echo, 1)
    closed = Loop()
    closed.close()
    monkeypatch.setattr(loop_module, "_all_loops", weakref.WeakSet([facade_loop, closed]))
    parent_state = dict(vars(facade_loop))
    loop_module._after_fork()
    assert "idle" in repr(facade_loop)
    assert facade_loop._thread is None
    assert closed.closed
    # Back to being the parent, whose thread the fixture then stops.
    vars(facade_loop).update(parent_state)


def test_ctrl_c_re_raises_after_the_grace_period_even_if_the_work_ignores_cancellation(
    facade_loop: Loop, ctrl_c: Callable[..., Awaitable[None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop_module, "CANCEL_GRACE", 0.01)
    release = facade_loop.call(make_event)
    finished = threading.Event()

    async def stubborn() -> None:
        with anyio.CancelScope(shield=True):
            await ctrl_c()
            await release.wait()
        finished.set()

    with pytest.raises(KeyboardInterrupt):
        facade_loop.call(stubborn)
    assert not finished.is_set()  # the caller did not wait for it
    facade_loop.post(release.set)
    assert finished.wait(10)


def test_a_job_finishes_once(facade_loop: Loop) -> None:
    job = loop_module.Job(facade_loop, echo, (1,), {}, None)
    job.finish(1, None)
    job.finish(2, ValueError("late"))
    assert job.result() == 1


def test_jobs_the_loop_never_got_to_run_fail_as_closed(facade_loop: Loop) -> None:
    facade_loop.call(echo, 0)
    never_ran = loop_module.Job(facade_loop, echo, (1,), {}, None)
    too_late = loop_module.Job(facade_loop, echo, (2,), {}, None)
    facade_loop.post(lambda: facade_loop._running.add(never_ran))
    facade_loop.close()
    facade_loop._start(too_late)
    for job in (never_ran, too_late):
        with pytest.raises(RuntimeError, match="was closed"):
            job.wait()


def test_works_without_sniffio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop_module, "sniffio", None)
    with Loop("asyncio") as loop:
        assert loop.call(echo, 7) == 7
