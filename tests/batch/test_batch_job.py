from __future__ import annotations

import json
import os
import stat
from typing import TYPE_CHECKING, Any

import pytest

from anyfan.batch import (
    BatchJob,
    BatchRequest,
    Counters,
    FsyncPolicy,
    JobMismatch,
    JournalError,
    LineProblem,
    count_lines,
    state_path,
)

if TYPE_CHECKING:
    from pathlib import Path

OPTIONS = {"base_url": "http://127.0.0.1:1", "max_attempts": 3}


def batch(custom_id: str, **body: Any) -> str:
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
    )


def bare(**body: Any) -> str:
    return json.dumps(body)


def write_input(path: Path, lines: list[str], mtime_ns: int = 10**18) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def answer(job: BatchJob, req: BatchRequest) -> None:
    job.record(req, 200, {"echo": req.custom_id, "usage": {"total_tokens": 10}}, latency=0.25)


def results(path: Path) -> dict[int, dict[str, Any]]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n")
    records = [json.loads(line) for line in data.splitlines()]
    by_line = {r["line"]: r for r in records}
    assert len(by_line) == len(records), "a line was recorded twice"
    return by_line


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "requests.jsonl", tmp_path / "results.jsonl"


def test_fresh_job_answers_every_line_once(files: tuple[Path, Path]) -> None:
    src, out = files
    write_input(src, [batch("a", n=1), bare(n=2), "", batch("c", n=4)])
    with BatchJob.open(src, out, OPTIONS) as job:
        assert not job.resumed
        pending = list(job.pending())
        assert [(r.line, r.custom_id) for r in pending] == [(1, "a"), (2, "line-2"), (4, "c")]
        assert job.in_flight == 3
        for req in pending:
            answer(job, req)
        assert job.in_flight == 0
        summary = job.summary()
    assert (summary.ok, summary.failed, summary.blank, summary.tokens) == (3, 0, 1, 30)
    assert summary.exit_code == 0
    got = results(out)
    assert sorted(got) == [1, 2, 4]
    assert got[2]["response"] == {
        "status_code": 200,
        "body": {"echo": "line-2", "usage": {"total_tokens": 10}},
    }
    assert got[2]["latency_ms"] == 250.0
    state = json.loads(state_path(out).read_text())
    assert state["options"]["base_url"] == OPTIONS["base_url"]
    assert state["options"]["batch.default_url"] == "/v1/chat/completions"
    assert state["input"]["size"] == src.stat().st_size


def test_resume_skips_what_is_done(files: tuple[Path, Path]) -> None:
    src, out = files
    write_input(src, [bare(n=n) for n in range(1, 11)])
    with BatchJob.open(src, out, OPTIONS) as job:
        for req in job.pending():
            if req.line % 3 == 0:
                answer(job, req)
            elif req.line == 5:
                job.record(req, 400, {"error": "bad"})
            elif req.line == 7:
                job.record_error(req, {"code": "timeout"}, attempts=3, latency=9.0)
    with BatchJob.open(src, out, OPTIONS) as job:
        assert job.resumed
        assert (job.counters.already_ok, job.counters.already_failed) == (3, 2)
        left = [req.line for req in job.pending()]
        assert left == [1, 2, 4, 8, 10]
        # Nothing is recorded this time: a third run must offer the same lines again.
    with BatchJob.open(src, out, OPTIONS) as job:
        reqs = list(job.pending())
        assert [r.line for r in reqs] == [1, 2, 4, 8, 10]
        for req in reqs:
            answer(job, req)
        summary = job.summary()
    assert summary.total_ok == 8
    assert summary.total_failed == 2
    assert summary.exit_code == 1
    assert sorted(results(out)) == list(range(1, 11))
    with BatchJob.open(src, out, OPTIONS) as job:  # a finished job reruns as a no-op
        assert list(job.pending()) == []
        assert job.counters.done == 10


def test_torn_last_line_is_repaired_and_redone(files: tuple[Path, Path]) -> None:
    src, out = files
    write_input(src, [bare(n=n) for n in range(1, 4)])
    with BatchJob.open(src, out, OPTIONS) as job:
        reqs = list(job.pending())
        answer(job, reqs[0])
        answer(job, reqs[2])
    whole = out.read_bytes()
    torn = whole.splitlines(keepends=True)[1][:-9]
    out.write_bytes(whole[: -len(whole.splitlines(keepends=True)[1])] + torn)
    assert results_raw_lines(out) == 2  # one whole line and a torn one
    with BatchJob.open(src, out, OPTIONS) as job:
        assert job.repaired_bytes == len(torn)
        assert [r.line for r in job.pending()] == [2, 3]


def results_raw_lines(path: Path) -> int:
    return len(path.read_bytes().split(b"\n"))


def test_malformed_lines_are_recorded_with_their_line_numbers(files: tuple[Path, Path]) -> None:
    src, out = files
    write_input(
        src,
        [
            bare(n=1),
            "{oops",
            "[]",
            batch("x", n=4),
            '{"custom_id": "y", "url": "/v1/chat/completions"}',
        ],
    )
    seen: list[LineProblem] = []
    with BatchJob.open(src, out, OPTIONS, on_problem=seen.append) as job:
        for req in job.pending():
            answer(job, req)
        summary = job.summary()
    assert [p.line for p in seen] == [2, 3, 5]
    assert (summary.ok, summary.malformed, summary.exit_code) == (2, 3, 1)
    got = results(out)
    assert got[2]["error"]["code"] == "malformed_line"
    assert got[2]["error"]["message"].startswith("line 2: invalid JSON")
    assert got[2]["custom_id"] is None
    assert got[2]["attempts"] == 0
    assert got[3]["error"]["message"] == "line 3: expected a JSON object, got an array"
    assert got[5]["custom_id"] == "y"
    assert "missing 'method'" in got[5]["error"]["message"]
    with BatchJob.open(src, out, OPTIONS, on_problem=seen.append) as job:
        assert list(job.pending()) == []
    assert len(seen) == 3  # not reported again on a rerun


def test_duplicate_ids_are_errors_on_the_later_line(files: tuple[Path, Path]) -> None:
    src, out = files
    write_input(
        src,
        [
            batch("a", n=1),
            bare(n=2),
            batch("a", n=3),
            batch("line-2", n=4),
            batch("line-6", n=5),
            bare(n=6),
        ],
    )
    with BatchJob.open(src, out, OPTIONS) as job:
        sent = [req.line for req in job.pending()]
        assert sent == [1, 2, 5]
        summary = job.summary()
    assert summary.duplicate == 3
    got = results(out)
    for line, cid in ((3, "a"), (4, "line-2"), (6, "line-6")):
        assert got[line]["custom_id"] == cid
        assert got[line]["error"] == {
            "code": "duplicate_custom_id",
            "message": f'line {line}: custom_id "{cid}" was already used by an earlier line',
        }


def test_duplicates_are_judged_the_same_after_a_resume(files: tuple[Path, Path]) -> None:
    src, out = files
    write_input(src, [batch("a", n=1), batch("b", n=2), batch("a", n=3), batch("b", n=4)])
    with BatchJob.open(src, out, OPTIONS) as job:
        it = job.pending()
        answer(job, next(it))  # line 1 done; the run dies before reading on
    with BatchJob.open(src, out, OPTIONS) as job:
        # Line 1 is skipped but still owns "a", so line 3 is a duplicate; line 2 is in
        # flight when the run dies, after line 4 was already judged a duplicate of it.
        assert [r.line for r in job.pending()] == [2]
    with BatchJob.open(src, out, OPTIONS) as job:
        assert [r.line for r in job.pending()] == [2]
    got = results(out)
    assert sorted(got) == [1, 3, 4]
    assert got[3]["error"]["code"] == got[4]["error"]["code"] == "duplicate_custom_id"


def test_changed_input_is_detected(files: tuple[Path, Path]) -> None:
    src, out = files
    write_input(src, [bare(n=1), bare(n=2)])
    with BatchJob.open(src, out, OPTIONS) as job:
        answer(job, next(job.pending()))
    write_input(src, [bare(n=1), bare(n=2), bare(n=3)])
    with pytest.raises(JobMismatch, match="bytes now") as info:
        BatchJob.open(src, out, OPTIONS)
    assert "--restart" in str(info.value)
    assert "--force" in str(info.value)
    assert len(info.value.differences) == 1
    write_input(src, [bare(n=1), bare(n=2)], mtime_ns=2 * 10**18)
    with pytest.raises(JobMismatch, match="modification time changed"):
        BatchJob.open(src, out, OPTIONS)


def test_changed_options_are_detected(files: tuple[Path, Path]) -> None:
    src, out = files
    write_input(src, [bare(n=1), bare(n=2)])
    with BatchJob.open(src, out, OPTIONS) as job:
        answer(job, next(job.pending()))
    with pytest.raises(JobMismatch) as info:
        BatchJob.open(src, out, {**OPTIONS, "max_attempts": 5, "model": "x"})
    assert info.value.differences == [
        "option max_attempts was 3, now 5",
        'option model was unset, now "x"',
    ]
    with pytest.raises(JobMismatch, match=r"batch\.default_url"):
        BatchJob.open(src, out, OPTIONS, default_url="/v1/responses")
    with BatchJob.open(src, out, OPTIONS) as job:  # unchanged: resumes
        assert [r.line for r in job.pending()] == [2]


def test_force_continues_and_adopts_the_new_options(files: tuple[Path, Path]) -> None:
    src, out = files
    write_input(src, [bare(n=1), bare(n=2)])
    with BatchJob.open(src, out, OPTIONS) as job:
        answer(job, next(job.pending()))
    changed = {**OPTIONS, "max_attempts": 9}
    with BatchJob.open(src, out, changed, force=True) as job:
        assert [r.line for r in job.pending()] == [2]
    with BatchJob.open(src, out, changed) as job:  # the new options are now the recorded ones
        assert job.resumed


def test_restart_discards_results(files: tuple[Path, Path]) -> None:
    src, out = files
    write_input(src, [bare(n=1), bare(n=2)])
    with BatchJob.open(src, out, OPTIONS) as job:
        answer(job, next(job.pending()))
    with BatchJob.open(src, out, {"other": True}, restart=True) as job:
        assert not job.resumed
        assert [r.line for r in job.pending()] == [1, 2]
    assert out.read_bytes() == b""


def test_empty_results_start_fresh_whatever_the_state(files: tuple[Path, Path]) -> None:
    src, out = files
    write_input(src, [bare(n=1)])
    BatchJob.open(src, out, OPTIONS).close()
    out.write_bytes(b'{"line":1,"custom_id":"li')  # only a torn line: nothing was done
    with BatchJob.open(src, out, {"different": 1}) as job:
        assert job.repaired_bytes > 0
        assert [r.line for r in job.pending()] == [1]


def test_results_without_a_state_file(files: tuple[Path, Path]) -> None:
    src, out = files
    write_input(src, [bare(n=1), bare(n=2)])
    with BatchJob.open(src, out, OPTIONS) as job:
        answer(job, next(job.pending()))
    state_path(out).unlink()
    with pytest.raises(JournalError, match="no state file"):
        BatchJob.open(src, out, OPTIONS)
    with BatchJob.open(src, out, OPTIONS, force=True) as job:
        assert [r.line for r in job.pending()] == [2]
    assert state_path(out).exists()


@pytest.mark.parametrize(
    ("state", "match"),
    [
        ("not json", "is not an anyfan batch state file"),
        ('{"format": "other"}', "is not an anyfan batch state file"),
        (
            '{"format": "anyfan-batch-state", "version": 99, "input": {}, "options": {}}',
            "different anyfan version",
        ),
    ],
)
def test_unreadable_state_file(files: tuple[Path, Path], state: str, match: str) -> None:
    src, out = files
    write_input(src, [bare(n=1), bare(n=2)])
    with BatchJob.open(src, out, OPTIONS) as job:
        answer(job, next(job.pending()))
    state_path(out).write_text(state)
    with pytest.raises(JournalError, match=match):
        BatchJob.open(src, out, OPTIONS)
    with BatchJob.open(src, out, OPTIONS, restart=True) as job:
        assert len(list(job.pending())) == 2


def test_results_answering_a_line_twice_are_refused(files: tuple[Path, Path]) -> None:
    src, out = files
    write_input(src, [bare(n=1)])
    with BatchJob.open(src, out, OPTIONS) as job:
        answer(job, next(job.pending()))
    out.write_bytes(out.read_bytes() * 2)
    with pytest.raises(JournalError, match="answers input line 1 again after a success"):
        BatchJob.open(src, out, OPTIONS)
    BatchJob.open(src, out, OPTIONS, restart=True).close()  # the lock was released


def test_misuse_is_refused(files: tuple[Path, Path]) -> None:
    src, out = files
    write_input(src, [bare(n=1), bare(n=2)])
    with pytest.raises(ValueError, match="exclude each other"):
        BatchJob.open(src, out, restart=True, force=True)
    with pytest.raises(ValueError, match="is the input file"):
        BatchJob.open(src, src)
    assert src.read_text().count("\n") == 2  # untouched
    with pytest.raises(ValueError, match="looks like a secret"):
        BatchJob.open(src, out, {"api_key": "sk-secret"})
    job = BatchJob.open(src, out)
    it = job.pending()
    req = next(it)
    answer(job, req)
    with pytest.raises(RuntimeError, match="recorded already"):
        job.record_error(req, TimeoutError("late"))
    with pytest.raises(RuntimeError, match="only once"):
        next(job.pending())
    assert "in_flight=0" in repr(job)
    req2 = next(it)
    job.close()
    job.close()
    with pytest.raises(RuntimeError, match="closed"):
        answer(job, req2)
    assert "sk-secret" not in out.read_text() + state_path(out).read_text()


def test_exceptions_are_recorded_by_type_and_message(files: tuple[Path, Path]) -> None:
    src, out = files
    write_input(src, [bare(n=1)])
    with BatchJob.open(src, out) as job:
        job.record_error(
            next(job.pending()), TimeoutError("no answer in 600 s"), attempts=2, latency=600
        )
        assert job.summary().failed == 1
        assert job.summary().retries == 1
    assert results(out)[1]["error"] == {"type": "TimeoutError", "message": "no answer in 600 s"}


def test_explicit_tokens_and_raw_bodies(files: tuple[Path, Path]) -> None:
    src, out = files
    write_input(src, [bare(n=1), bare(n=2)])
    with BatchJob.open(src, out) as job:
        a, b = job.pending()
        job.record(a, 200, b'{"usage": {"total_tokens": 7}}')
        job.record(b, 200, {"usage": {"total_tokens": 1}}, tokens=5, raw=b"{}")
        job.note_rate_limited()  # no progress attached: just counted
        assert job.summary().tokens == 12
        assert job.summary().rate_limited == 1
    got = results(out)
    assert got[1]["response"]["body"] == {"usage": {"total_tokens": 7}}
    assert got[2]["response"]["body"] == {}  # raw is what is written


class RecordingProgress:
    def __init__(self) -> None:
        self.updates: list[int] = []
        self.closed: list[int] = []

    def update(self, counters: Counters) -> None:
        self.updates.append(counters.done)

    def close(self, counters: Counters) -> None:
        self.closed.append(counters.done)


def test_progress_sees_every_change(files: tuple[Path, Path]) -> None:
    src, out = files
    write_input(src, [bare(n=1), "junk", bare(n=3)])
    progress = RecordingProgress()
    with BatchJob.open(src, out) as job:
        job.progress = progress
        for req in job.pending():
            answer(job, req)
        job.note_rate_limited(2)
        assert job.summary().rate_limited == 2
    assert progress.updates == [1, 2, 3, 3]
    assert progress.closed == [3]


def test_rates_use_the_clock(files: tuple[Path, Path]) -> None:
    src, out = files
    write_input(src, [bare(n=n) for n in range(6)])
    now = [0.0]
    with BatchJob.open(
        src, out, clock=lambda: now[0], fsync=FsyncPolicy(every_seconds=None)
    ) as job:
        for req in job.pending():
            now[0] += 10.0
            answer(job, req)
        summary = job.summary()
    assert summary.elapsed == 60.0  # from handing out the first request to the last result
    assert summary.requests_per_minute == pytest.approx(6.0)


def test_count_lines(tmp_path: Path) -> None:
    path = tmp_path / "f"
    for data, n in (
        (b"", 0),
        (b"a", 1),
        (b"a\n", 1),
        (b"a\n\nb", 3),
        (b"x\n" * 3_000_000, 3_000_000),
    ):
        path.write_bytes(data)
        assert count_lines(path) == n


def test_damaged_results_are_refused_and_the_state_kept(files: tuple[Path, Path]) -> None:
    src, out = files
    write_input(src, [bare(n=1), bare(n=2), bare(n=3)])
    with BatchJob.open(src, out, OPTIONS) as job:
        a, b, _ = job.pending()
        answer(job, a)
        answer(job, b)
    first, second = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(first + b"garbage\n" + second)
    state = state_path(out).read_bytes()
    for force in (False, True):
        with pytest.raises(JournalError, match=r"line 2, is not valid JSON.*--restart"):
            BatchJob.open(
                src, out, {**OPTIONS, "changed": force} if force else OPTIONS, force=force
            )
    assert state_path(out).read_bytes() == state


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_results_are_0o644_minus_the_umask_and_the_state_owner_only(
    files: tuple[Path, Path],
) -> None:
    src, out = files
    src.write_text('{"model": "m"}\n')
    old = os.umask(0o022)
    try:
        with BatchJob.open(src, out, {"base_url": "http://x"}) as job:
            assert stat.S_IMODE(os.stat(out).st_mode) == 0o644
            assert stat.S_IMODE(os.stat(job.state_path).st_mode) == 0o600
        out.unlink()
        job.state_path.unlink()
        job.state_path.with_name(job.state_path.name + ".tmp").write_text("{}")
        os.chmod(job.state_path.with_name(job.state_path.name + ".tmp"), 0o666)
        os.umask(0o077)
        with BatchJob.open(src, out, {"base_url": "http://x"}) as job:
            assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
            assert stat.S_IMODE(os.stat(job.state_path).st_mode) == 0o600
    finally:
        os.umask(old)
