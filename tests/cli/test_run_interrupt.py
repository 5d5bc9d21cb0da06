"""Ctrl-C (SIGINT) stops ``anyfan run`` cleanly, and the same command then resumes.

The signal is sent once a chosen number of results is on disk, never after a
guessed delay: in this process through the progress hook, and to a real
``python -m anyfan run`` process once its results file has grown that far.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
from run_helpers import SECRET, chat, plain_requests, read_results, served

from anyfan.cli import _run

if TYPE_CHECKING:
    from pathlib import Path

    from anyfan.batch import Counters
    from anyfan.sim import Simulator

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

BACKENDS = ["asyncio"]
if importlib.util.find_spec("trio") and any(
    importlib.util.find_spec(m) for m in ("httpx2", "httpx")
):
    BACKENDS.append("trio")

#: How long a stuck process may take before the test fails (a safety net, not a timing).
DEADLINE = 60.0


class InterruptAfter:
    """A progress reporter that sends this process SIGINT once ``count`` lines are done."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.sent = False
        self.closed = False

    def update(self, counters: Counters) -> None:
        if counters.done >= self.count and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)

    def close(self, counters: Counters) -> None:
        self.closed = True


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_stops_cleanly_and_a_rerun_resumes(
    sim: Simulator,
    tmp_path: Path,
    run_cli: Any,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
) -> None:
    sim.set_latency(ttft_ms=20)
    src = plain_requests(tmp_path / "in.jsonl", 120)
    out = tmp_path / "out.jsonl"
    args = [src, "-o", out, "--base-url", sim.base_url, "--concurrency", 4, "--backend", backend]
    reporter = InterruptAfter(10)
    monkeypatch.setattr(_run, "make_progress", lambda *a, **k: reporter)
    ran = run_cli(*args)
    assert reporter.sent
    assert reporter.closed
    assert ran.code == _run.EXIT_INTERRUPTED
    assert "interrupted; every finished result is in" in ran.err
    assert "results in" in ran.out  # the summary still comes
    done = [r["line"] for r in read_results(out)]
    assert 10 <= len(done) < 120
    assert len(set(done)) == len(done)
    # The requests in flight were cancelled: the server saw them go.
    assert sim.wait_until_idle().in_flight == 0

    monkeypatch.undo()
    resumed = run_cli(*args, "--progress", "off")
    assert resumed.code == 0, resumed.err
    assert f"resuming: {len(done)} lines already answered" in resumed.err
    results = read_results(out)
    assert sorted(r["line"] for r in results) == list(range(1, 121))
    assert all(r["response"]["status_code"] == 200 for r in results)


def wait_for_lines(path: Path, count: int, proc: subprocess.Popen[bytes]) -> None:
    """Return once ``path`` holds ``count`` lines; fail if the process ends first."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        if proc.poll() is not None:
            pytest.fail(f"anyfan run ended (exit {proc.returncode}) before {count} results")
        time.sleep(0.005)  # polling the file: the trigger is its content, not the clock
    pytest.fail(f"no {count} results within {DEADLINE} s")


def test_sigint_to_a_real_process(sim: Simulator, tmp_path: Path) -> None:
    pytest.importorskip("aiohttp")
    sim.set_latency(ttft_ms=30)
    src = plain_requests(tmp_path / "in.jsonl", 150)
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "anyfan", "run", str(src), "-o", str(out)]
    command += ["--base-url", sim.base_url, "--concurrency", "8", "--progress", "plain"]
    env = {**os.environ, "OPENAI_API_KEY": SECRET}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_lines(out, 20, proc)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:  # pragma: no cover - only when the test fails
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr.decode()
    assert b"rerun the same command to resume" in stderr
    assert b"Traceback" not in stderr
    first = out.read_bytes()
    assert first.endswith(b"\n")
    assert 20 <= first.count(b"\n") < 150
    assert sim.wait_until_idle().in_flight == 0

    again = subprocess.run(command, env=env, capture_output=True, timeout=DEADLINE, check=False)
    assert again.returncode == 0, again.stderr.decode()
    results = read_results(out)
    assert sorted(r["line"] for r in results) == list(range(1, 151))
    for result in results:
        assert result["response"]["body"] == served(sim, chat(result["line"] - 1))
    # The key was in the environment only; no output of either run names it.
    outputs = [stdout, stderr, again.stdout, again.stderr, out.read_bytes()]
    outputs.append((tmp_path / "out.jsonl.anyfan.json").read_bytes())
    assert not [o for o in outputs if SECRET.encode() in o]
