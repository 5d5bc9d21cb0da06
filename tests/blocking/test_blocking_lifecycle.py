"""The loop thread's life in a real process: clean exit, a real Ctrl-C, fork."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from strategies import HAS_TRIO, HAS_UVLOOP

#: A hung child is a failure, not a slow pass; this only bounds the damage.
HANG = 60


def python(code: str, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *flags, "-c", textwrap.dedent(code)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_exiting_without_closing_anything_is_clean() -> None:
    # Six calls hang when the script ends: four in an open stream, one in an
    # executor, one in a daemon thread's map. Exit must cancel each of them
    # (their cleanup runs) without hanging and without a word on stderr.
    code = f"""
        import threading
        import anyio
        from anyfan import blocking
        from anyfan.blocking import Executor, Fan

        hanging = []
        all_hanging = threading.Event()

        async def double(x):
            await anyio.sleep(0)
            return 2 * x

        async def stuck(x):
            hanging.append(x)
            if len(hanging) == 6:
                all_hanging.set()
            try:
                await anyio.sleep_forever()
            finally:
                print("cleaned up", flush=True)

        assert blocking.map(double, range(5)) == [0, 2, 4, 6, 8]
        assert blocking.map(lambda x: x + 1, range(5)) == [1, 2, 3, 4, 5]  # worker threads
        fan = Fan(4)
        assert fan.map(double, [1]) == [2]
        open_stream = fan.stream(stuck, range(10))
        executor = Executor(4)
        pending = [executor.submit(double, 1), executor.submit(stuck, -1)]
        assert pending[0].result(10) == 2
        half_read = blocking.stream(double, range(100), concurrency=2)
        next(half_read)
        if {HAS_TRIO}:
            assert blocking.map(double, [1], backend="trio") == [2]
            assert Fan(2, backend="trio").map(lambda x: x, [3]) == [3]
        if {HAS_UVLOOP}:
            uv = Fan(2, backend="asyncio", backend_options={{"use_uvloop": True}})
            assert uv.map(double, [2]) == [4]

        def daemon():
            try:
                Fan(1).map(stuck, [-2])
            except RuntimeError:
                pass

        threading.Thread(target=daemon, daemon=True).start()
        assert all_hanging.wait(10)
        print("done", flush=True)
    """
    child = python(code, "-W", "always")
    out, err = child.communicate(timeout=HANG)
    assert err == ""
    assert out == "done\n" + "cleaned up\n" * 6
    assert child.returncode == 0


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_real_ctrl_c_cancels_the_call_and_the_facade_stays_usable() -> None:
    code = """
        import sys, threading
        import anyio
        from anyfan import blocking
        from anyfan.blocking._loop import wait_for

        main = threading.main_thread().ident
        cancelled = []

        async def call(x):
            if x == 0:
                while sys._current_frames()[main].f_code is not wait_for.__code__:
                    await anyio.sleep(0.001)
                print("ready", flush=True)
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                cancelled.append(x)
                raise

        try:
            blocking.map(call, range(4))
        except KeyboardInterrupt:
            print("interrupted", sorted(cancelled), flush=True)
        print(blocking.map(lambda x: 2 * x, [21]), flush=True)
    """
    child = python(code)
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=HANG)
    assert err == ""
    assert out == "interrupted [0, 1, 2, 3]\n[42]\n"
    assert child.returncode == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_a_fresh_loop() -> None:
    code = """
        import os
        from anyfan import blocking

        async def double(x):
            return 2 * x

        assert blocking.map(double, [1]) == [2]
        pid = os.fork()
        if pid == 0:
            os._exit(0 if blocking.map(double, [2]) == [4] else 1)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), blocking.map(double, [3]), flush=True)
    """
    # Python 3.12+ warns about forking a threaded process; that is the point here.
    child = python(code, "-W", "ignore::DeprecationWarning")
    out, err = child.communicate(timeout=HANG)
    assert err == ""
    assert out == "0 [6]\n"
    assert child.returncode == 0
