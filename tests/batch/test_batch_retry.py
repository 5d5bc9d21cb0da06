"""``retry_failed``: errors re-sent and superseded, one result per line for readers."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from test_batch_job import answer, batch, write_input

from anyfan.batch import BatchJob, JournalError, read_results

if TYPE_CHECKING:
    from pathlib import Path

OPTIONS = {"base_url": "http://127.0.0.1:1"}


def test_only_errors_are_sent_again_and_their_new_records_supersede_them(tmp_path: Path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, [batch("a", n=1), batch("b", n=2), "{oops", batch("a", n=4), batch("e", n=5)])
    with BatchJob.open(src, out, OPTIONS) as job:
        a, b, e = job.pending()
        answer(job, a)
        job.record(b, 500, {"error": {"message": "down"}})
        job.record_error(e, {"code": "timeout", "message": "slow"})
    with BatchJob.open(src, out, OPTIONS) as job:  # without the option, nothing is re-sent
        assert list(job.pending()) == []
    with BatchJob.open(src, out, OPTIONS, retry_failed=True) as job:
        assert job.summary().already_failed == 4  # b, e, the malformed and the duplicate line
        again = list(job.pending())
        assert [r.custom_id for r in again] == ["b", "e"]  # not the malformed or duplicate line
        answer(job, again[0])
        with pytest.raises(RuntimeError, match="recorded already"):
            answer(job, again[0])
        job.record_error(again[1], {"code": "timeout", "message": "still slow"})
        s = job.summary()
        assert (s.ok, s.failed, s.already_ok, s.already_failed) == (1, 1, 1, 2)
    raw = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(raw) == 7  # appended, not rewritten
    final = list(read_results(out))
    assert [(r["line"], r["custom_id"]) for r in final] == [
        (3, None),
        (4, "a"),
        (1, "a"),
        (2, "b"),
        (5, "e"),
    ]
    assert final[3]["response"]["status_code"] == 200
    assert final[4]["error"]["message"] == "still slow"
    with BatchJob.open(src, out, OPTIONS) as job:  # the reader's rule is the job's rule
        s = job.summary()
        assert (s.already_ok, s.already_failed) == (2, 3)


def test_a_success_is_never_superseded(tmp_path: Path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(src, [batch("a", n=1)])
    with BatchJob.open(src, out, OPTIONS) as job:
        answer(job, next(job.pending()))
    out.write_bytes(out.read_bytes() * 2)
    with pytest.raises(JournalError, match="again after a success"):
        BatchJob.open(src, out, OPTIONS, retry_failed=True)


def test_the_reader_keeps_memory_to_the_repeated_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anyfan.batch import _journal

    monkeypatch.setattr(_journal, "_KEEP", 4)  # prune often
    out = tmp_path / "out.jsonl"
    tail = {"attempts": 1, "latency_ms": 1.0}
    lines = [{"line": n, "custom_id": str(n), "error": {}, **tail} for n in range(1, 30)]
    lines += [{"line": 3, "custom_id": "3", "response": {"status_code": 200, "body": {}}, **tail}]
    out.write_text("".join(json.dumps(r) + "\n" for r in lines))
    final = list(read_results(out))
    assert [r["line"] for r in final] == [n for n in range(1, 30) if n != 3] + [3]
