"""Exactly once across SIGKILLs: kill a job at 20+ chosen points, rerun it, check the results.

The kill points come from a seeded RNG and the worker's own progress reports
(it waits for the go-ahead after each result), so the test is deterministic.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL")

CHILD = Path(__file__).with_name("crash_child.py")
LINES = 360


def build_input(path: Path) -> dict[int, Any]:
    """Write the requests; return, per non-blank line, what its result must be."""
    rng = random.Random(7)
    lines: list[str] = []
    expect: dict[int, Any] = {}
    ids: list[str] = []
    for n in range(1, LINES + 1):
        roll = rng.random()
        if roll < 0.03:
            lines.append("")
            continue
        if roll < 0.07:
            lines.append('{"custom_id": "x", "body": ')
            expect[n] = "malformed_line"
        elif roll < 0.10 and ids:
            cid = rng.choice(ids)
            lines.append(
                json.dumps(
                    {"custom_id": cid, "method": "POST", "url": "/v1/embeddings", "body": {"n": n}}
                )
            )
            expect[n] = "duplicate_custom_id"
        elif roll < 0.5:
            cid = f"req-{n}"
            ids.append(cid)
            lines.append(
                json.dumps(
                    {"custom_id": cid, "method": "POST", "url": "/v1/embeddings", "body": {"n": n}}
                )
            )
            expect[n] = "fake_failure" if n % 13 == 0 else {"echo": cid, "line": n, "n": n}
        else:
            lines.append(json.dumps({"model": "m", "n": n}))
            expect[n] = "fake_failure" if n % 13 == 0 else {"echo": f"line-{n}", "line": n, "n": n}
    path.write_text("\n".join(lines) + "\n")
    return expect


class Workers:
    """The forking helper: each `spawn` starts one worker process."""

    def __init__(self, src: Path, out: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(src), str(out)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = 0
        # A safety net, not a timing assumption: a hung worker fails the test instead of hanging it.
        self.watchdog = threading.Timer(120, self.kill_all)
        self.watchdog.start()

    def kill_all(self) -> None:
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
        self.proc.kill()

    def read(self) -> tuple[str, str]:
        assert self.proc.stdout is not None
        kind, _, arg = self.proc.stdout.readline().strip().partition(" ")
        return kind, arg

    def say(self, cmd: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def spawn(self, seed: int) -> int:
        """Start a worker; return the bytes of torn line it repaired."""
        self.say(f"spawn {seed}")
        kind, arg = self.read()
        assert kind == "ready", kind
        pid, repaired = arg.split()
        self.pid = int(pid)
        return int(repaired)

    def ended(self) -> int:
        kind, status = self.read()
        assert kind == "exit", kind
        self.pid = 0
        return int(status)

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        assert os.WIFSIGNALED(status := self.ended())
        assert os.WTERMSIG(status) == signal.SIGKILL

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.watchdog.cancel()
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def test_sigkill_at_random_points_leaves_each_line_exactly_once(tmp_path: Path) -> None:
    src, out = tmp_path / "requests.jsonl", tmp_path / "results.jsonl"
    expect = build_input(src)
    rng = random.Random(20240607)
    recorded_before: set[int] = set()
    kills = tears = repairs = 0
    finished = torn_last = False
    workers = Workers(src, out)
    for run in range(200):
        repaired = workers.spawn(seed=run)
        assert (repaired > 0) == torn_last
        repairs += repaired > 0
        kind = "ready"
        target, torn_last = rng.randint(0, 20), rng.random() < 0.3
        records = 0
        while True:
            if kind in ("ready", "rec") and records >= target:
                if torn_last and records:
                    workers.say("t")
                    assert workers.read()[0] == "torn"
                    tears += 1
                else:
                    torn_last = False
                workers.kill()
                kills += 1
                break
            if kind in ("ready", "rec"):
                workers.say("c")
            kind, arg = workers.read()
            if kind == "send":
                assert int(arg) not in recorded_before, f"line {arg} was requested again"
            elif kind == "rec":
                records += 1
                recorded_before.add(int(arg))
            elif kind == "finished":
                assert workers.ended() == 0
                finished = True
                break
            else:
                raise AssertionError(f"unexpected message {kind!r}")
        if finished:
            break
    workers.close()
    assert finished
    assert kills >= 20, kills
    assert tears >= 3
    assert repairs == tears

    data = out.read_bytes()
    assert data.endswith(b"\n")
    results = [json.loads(line) for line in data.splitlines()]
    lines = [r["line"] for r in results]
    assert len(lines) == len(set(lines)), "a line was recorded twice"
    assert set(lines) == set(expect)
    for r in results:
        want = expect[r["line"]]
        if isinstance(want, str):
            assert r["error"]["code"] == want
        else:
            assert r["response"] == {"status_code": 200, "body": want}
