"""Exactly once across SIGKILLs: kill ``anyfan run`` over and over, then let it finish.

One job against a simulator that injects faults (500s, 503s, resets, bodies
cut half-way) is killed with SIGKILL 24 times. Each kill
point is drawn from a seeded RNG as a number of new result lines, and the kill
is sent once the results file holds them (never after a guessed delay); a few
kills land right at start-up instead, and some runs find a torn last line left
for them, as a kill in the middle of a write would leave it. After the final,
unkilled run the results hold every non-blank input line exactly once, each
response body is what the simulator serves for that request, and no answered
line was requested again.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from run_helpers import SECRET, batch_line, chat, read_results, served

from anyfan.sim import Simulator

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL")

FORKER = Path(__file__).with_name("run_forker.py")
LINES = 700
KILLS = 24
CONCURRENCY = 8
SEED = 20241125
#: A safety net for a stuck process, not a timing assumption.
DEADLINE = 60.0
TORN = b'{"line":1,"custom_id":"c1","response":{"status_code":200,"body":{"id"'


def build_input(path: Path, rng: random.Random) -> dict[int, Any]:
    """Write the requests; return per non-blank line its body, or the error it must get."""
    lines: list[str] = []
    expect: dict[int, Any] = {}
    ids: list[str] = []
    for n in range(1, LINES + 1):
        roll = rng.random()
        if roll < 0.02:
            lines.append("")
        elif roll < 0.04:
            lines.append('{"custom_id": "broken", "body": ')
            expect[n] = "malformed_line"
        elif roll < 0.06 and ids:
            lines.append(batch_line(rng.choice(ids), chat(n)))
            expect[n] = "duplicate_custom_id"
        elif roll < 0.5:
            ids.append(f"c{n}")
            lines.append(batch_line(f"c{n}", chat(n)))
            expect[n] = chat(n)
        else:
            lines.append(json.dumps(chat(n)))
            expect[n] = chat(n)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return expect


class LineCounter:
    """Counts the newlines in a growing file, reading only what was added."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0

    def count(self) -> int:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return 0
        if size < self.offset:  # a torn tail was cut off: count afresh
            self.offset = self.lines = 0
        with self.path.open("rb") as f:
            f.seek(self.offset)
            added = f.read(size - self.offset)
        self.offset += len(added)
        self.lines += added.count(b"\n")
        return self.lines


class Forker:
    """The helper process that forks one ``anyfan run`` per `spawn`."""

    def __init__(self, log: Path, args: list[str]) -> None:
        env = {**os.environ, "OPENAI_API_KEY": SECRET}
        self.proc = subprocess.Popen(
            [sys.executable, str(FORKER), str(log), "--", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.messages: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.messages.put(line.strip())

    def _next(self, prefix: str, timeout: float) -> int:
        message = self.messages.get(timeout=timeout)
        assert message.startswith(prefix), message
        return int(message.removeprefix(prefix))

    def spawn(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write("spawn\n")
        self.proc.stdin.flush()
        return self._next("pid ", DEADLINE)

    def exited(self) -> int | None:
        try:
            return self._next("exit ", 0)
        except queue.Empty:
            return None

    def wait(self) -> int:
        return self._next("exit ", DEADLINE)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(DEADLINE)
        self.reader.join(DEADLINE)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def run_until(forker: Forker, counter: LineCounter, target: int) -> int | None:
    """Start a run and SIGKILL it once the results hold ``target`` lines.

    Returns the run's wait status if it ended by itself first.
    """
    pid = forker.spawn()
    deadline = time.monotonic() + DEADLINE
    while counter.count() < target:
        status = forker.exited()
        if status is not None:
            return status
        if time.monotonic() > deadline:  # pragma: no cover - only when the test fails
            pytest.fail(f"no {target} results within {DEADLINE} s")
        time.sleep(0.001)  # polling the file: the trigger is its content, not the clock
    os.kill(pid, signal.SIGKILL)
    status = forker.wait()
    assert os.WIFSIGNALED(status)
    assert os.WTERMSIG(status) == signal.SIGKILL
    return None


def test_killed_24_times_the_job_still_answers_every_line_exactly_once(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    rng = random.Random(SEED)
    src = tmp_path / "requests.jsonl"
    out = tmp_path / "results.jsonl"
    log = tmp_path / "runs.log"
    expect = build_input(src, rng)
    sendable = sum(isinstance(e, dict) for e in expect.values())
    faults = {
        "server_error": 0.03,
        "unavailable": 0.03,
        "reset": 0.03,
        "stream_cut": 0.02,
    }  # insufficient_quota stops the job: see test_run_stop_crash.py
    with Simulator(seed=5) as sim:
        sim.set_faults(**faults)
        sim.set_latency(ttft_ms=2, jitter=0.5)
        args = [str(src), "-o", str(out), "--base-url", sim.base_url]
        args += ["--concurrency", str(CONCURRENCY), "--max-attempts", "10", "--progress", "off"]
        forker = Forker(log, args)
        counter = LineCounter(out)
        tears = 0
        try:
            for kill in range(KILLS):
                if kill and rng.random() < 0.25:
                    with out.open("ab") as f:
                        f.write(TORN[: rng.randint(1, len(TORN))])
                    tears += 1
                # Mostly a few new results; now and then right at start-up.
                step = 0 if rng.random() < 0.1 else rng.randint(1, 25)
                ended = run_until(forker, counter, counter.count() + step)
                assert ended is None, f"the job finished before kill {kill + 1}"
            final = forker.spawn()
            status = forker.wait()
        finally:
            forker.close()
        assert final > 0
        assert os.WIFEXITED(status)
        assert os.WEXITSTATUS(status) == 1  # malformed lines and duplicates are errors

        counters = sim.wait_until_idle()
        # Only faults and kills cause repeats: a line once answered is never requested again.
        assert counters.requests <= sendable + sum(counters.faults.values()) + KILLS * CONCURRENCY

        data = out.read_bytes()
        assert data.endswith(b"\n")
        results = read_results(out)
        lines = [r["line"] for r in results]
        assert len(lines) == len(set(lines)), "an input line was answered twice"
        assert set(lines) == set(expect)
        ok = 0
        for result in results:
            wanted = expect[result["line"]]
            if isinstance(wanted, str):
                assert result["error"]["code"] == wanted
                continue
            response = result.get("response")
            if response is None:  # every attempt failed without a response
                assert result["error"]["code"] == "connection_error"
                continue
            body, status_code = response["body"], response["status_code"]
            if status_code == 200:
                assert body == served(sim, wanted)
                ok += 1
            else:
                assert (status_code, body["error"]["code"]) in {
                    (500, None),
                    (503, None),
                }
        assert ok >= 0.95 * sendable

    text = log.read_text(encoding="utf-8")
    assert SECRET not in text
    assert SECRET.encode() not in data
    # Torn tails left for a run that was killed before opening the job pile up into one.
    assert tears > 0
    assert "cut a torn last line" in text
    assert "Traceback" not in text
