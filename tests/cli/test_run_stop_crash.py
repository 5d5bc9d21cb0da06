"""A job stopped by its account, and ``--retry-failed``, across SIGKILLs: still exactly once.

Both kill ``anyfan run`` over and over against the simulator (each kill once
the results file holds a seeded number of new lines, never after a guessed
delay), then let it finish, and check every non-blank input line has exactly
one result by the superseding rule (a line's last record is its result, and
only an error is ever superseded).
"""

from __future__ import annotations

import json
import os
import random
from typing import TYPE_CHECKING, Any

import pytest
from run_helpers import SECRET, read_results, served
from test_run_crash import Forker, LineCounter, build_input, run_until

from anyfan.batch import read_results as final_results
from anyfan.sim import Simulator

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL")

KILLS = 8
CONCURRENCY = 8
SEED = 20261205
TRANSIENT = {"server_error": 0.03, "unavailable": 0.03, "reset": 0.03}


def kill_a_few(forker: Forker, counter: LineCounter, rng: random.Random) -> None:
    for kill in range(KILLS):
        ended = run_until(forker, counter, counter.count() + rng.randint(0, 15))
        assert ended is None, f"the job finished before kill {kill + 1}"


def check_final(sim: Simulator, out: Path, expect: dict[int, Any]) -> int:
    """Check the superseding rule over the raw file and each line's result; return the ok count."""
    raw = read_results(out)
    settled: set[int] = set()
    for record in raw:  # nothing follows a success of the same line
        assert record["line"] not in settled, f"line {record['line']} superseded a success"
        if record.get("response", {}).get("status_code") == 200:
            settled.add(record["line"])
    final = list(final_results(out))
    lines = [r["line"] for r in final]
    assert len(lines) == len(set(lines)) == len(expect)
    assert set(lines) == set(expect)
    ok = 0
    for result in final:
        wanted = expect[result["line"]]
        if isinstance(wanted, str):
            assert result["error"]["code"] == wanted
        elif result.get("response", {}).get("status_code") == 200:
            assert result["response"]["body"] == served(sim, wanted)
            ok += 1
    return ok


def test_a_job_stopped_for_quota_between_kills_loses_and_repeats_nothing(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    rng = random.Random(SEED)
    src, out, log = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "runs.log"
    expect = build_input(src, rng)
    sendable = sum(isinstance(e, dict) for e in expect.values())
    with Simulator(seed=7) as sim:
        sim.set_faults(**TRANSIENT)
        sim.set_latency(ttft_ms=2, jitter=0.5)
        args = [str(src), "-o", str(out), "--base-url", sim.base_url, "--progress", "off"]
        forker = Forker(log, [*args, "--concurrency", str(CONCURRENCY), "--max-attempts", "10"])
        counter = LineCounter(out)
        try:
            kill_a_few(forker, counter, rng)
            before = counter.count()
            sim.set_faults(insufficient_quota=1.0)  # the account runs dry
            forker.spawn()
            status = forker.wait()
            assert os.WIFEXITED(status)
            assert os.WEXITSTATUS(status) == 3
            # No failing line is recorded as answered: whatever the stopped run added is a
            # line judged locally (malformed or duplicate), never a server's answer.
            added = out.read_text(encoding="utf-8").splitlines()[before:]
            assert all("response" not in json.loads(r) for r in added if r.strip())
            assert "insufficient_quota" not in "".join(added)
            sim.set_faults(**TRANSIENT)  # paid for again
            kill_a_few(forker, counter, rng)
            forker.spawn()
            status = forker.wait()
        finally:
            forker.close()
        assert os.WIFEXITED(status)
        assert os.WEXITSTATUS(status) == 1  # malformed lines and duplicates are errors
        assert check_final(sim, out, expect) >= 0.95 * sendable
        assert all("insufficient_quota" not in str(r) for r in read_results(out))
    text = log.read_text(encoding="utf-8")
    assert "stopped: line " in text
    assert "no quota left" in text
    assert SECRET not in text
    assert "Traceback" not in text


def test_retry_failed_killed_again_and_again_ends_with_one_result_per_line(
    tmp_path: Path,
) -> None:
    pytest.importorskip("uvicorn")
    rng = random.Random(SEED + 1)
    src, out, log = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "runs.log"
    expect = build_input(src, rng)
    sendable = sum(isinstance(e, dict) for e in expect.values())
    with Simulator(seed=8) as sim:
        sim.set_latency(ttft_ms=2, jitter=0.5)
        args = [str(src), "-o", str(out), "--base-url", sim.base_url, "--progress", "off"]
        args += ["--concurrency", str(CONCURRENCY), "--max-attempts", "1"]
        sim.set_faults(server_error=0.3)
        first = Forker(log, args)
        try:
            first.spawn()
            assert os.WEXITSTATUS(first.wait()) == 1
        finally:
            first.close()
        failed = sum("error" in r or r["response"]["status_code"] != 200 for r in read_results(out))
        assert failed > 0.2 * sendable
        sim.set_faults(**TRANSIENT)
        forker = Forker(log, [*args, "--retry-failed"])
        counter = LineCounter(out)
        try:
            kill_a_few(forker, counter, rng)
            sim.set_faults()  # the outage is over
            sim.reset()
            forker.spawn()
            status = forker.wait()
        finally:
            forker.close()
        assert os.WIFEXITED(status)
        assert os.WEXITSTATUS(status) == 1  # the malformed and duplicate lines stay errors
        # The last run re-sent the lines still failed, and only those.
        assert sim.wait_until_idle().requests <= failed
        assert check_final(sim, out, expect) == sendable
    text = log.read_text(encoding="utf-8")
    assert SECRET not in text
    assert "Traceback" not in text
