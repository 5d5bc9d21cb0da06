from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

import pytest

from anyfan.batch import FsyncPolicy, JobLocked, JournalError
from anyfan.batch._journal import Journal
from anyfan.batch._records import RecordHead, encode_error

if TYPE_CHECKING:
    from pathlib import Path


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def rec(line: int) -> bytes:
    return encode_error(line, f"id-{line}", {"code": "x"}, 1, 0.0)


@pytest.fixture
def count_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def test_append_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    journal = Journal(path)
    assert path.exists()
    assert journal.size == 0
    journal.append(rec(3))
    journal.append(rec(1))
    assert journal.size == path.stat().st_size
    assert list(journal.heads()) == [RecordHead(3, False), RecordHead(1, False)]
    journal.close()
    journal.close()
    assert path.read_bytes() == rec(3) + rec(1)


@pytest.mark.parametrize(
    ("content", "kept"),
    [
        (b"", b""),
        (b"partial line with no newline", b""),
        (b"a\nb\n", b"a\nb\n"),
        (b"a\nb\ntorn", b"a\nb\n"),
        (b"a\n" + b"x" * 200_000, b"a\n"),  # the torn tail spans several read chunks
        (b"a\n" * 50_000 + b"torn", b"a\n" * 50_000),
    ],
)
def test_repair_cuts_a_torn_tail(tmp_path: Path, content: bytes, kept: bytes) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(content)
    journal = Journal(path)
    assert journal.repair() == len(content) - len(kept)
    assert journal.size == len(kept)
    journal.append(b"next\n")
    journal.close()
    assert path.read_bytes() == kept + b"next\n"


def test_clear(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"old\n")
    journal = Journal(path)
    journal.clear()
    journal.append(rec(1))
    journal.close()
    assert path.read_bytes() == rec(1)


def test_bad_line_is_reported_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(rec(1) + b"hello\n")
    journal = Journal(path)
    with pytest.raises(JournalError, match=r"out\.jsonl, line 2, is not valid JSON"):
        list(journal.heads())
    journal.close()


def test_a_second_writer_is_locked_out(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    first = Journal(path)
    with pytest.raises(JobLocked, match="another process is writing"):
        Journal(path)
    first.close()
    Journal(path).close()  # free again once closed


def test_fsync_every_n_lines(tmp_path: Path, count_fsyncs: list[int]) -> None:
    journal = Journal(tmp_path / "o", FsyncPolicy(every_lines=3, every_seconds=None))
    for n in range(1, 8):
        journal.append(rec(n))
    assert len(count_fsyncs) == 2
    journal.close()
    assert len(count_fsyncs) == 3  # the last line, at close


def test_fsync_every_t_seconds(tmp_path: Path, count_fsyncs: list[int]) -> None:
    clock = FakeClock()
    journal = Journal(tmp_path / "o", FsyncPolicy(every_seconds=1.0), clock)
    journal.append(rec(1))
    clock.now = 0.5
    journal.append(rec(2))
    assert count_fsyncs == []
    clock.now = 1.0
    journal.append(rec(3))
    assert len(count_fsyncs) == 1
    clock.now = 1.5
    journal.append(rec(4))
    assert len(count_fsyncs) == 1
    journal.close()
    assert len(count_fsyncs) == 2


def test_close_with_nothing_new_does_not_fsync(tmp_path: Path, count_fsyncs: list[int]) -> None:
    journal = Journal(tmp_path / "o", FsyncPolicy(every_lines=1, every_seconds=None))
    journal.append(rec(1))
    assert len(count_fsyncs) == 1
    journal.close()
    assert len(count_fsyncs) == 1


@pytest.mark.parametrize(
    ("policy", "match"),
    [({"every_lines": 0}, "every_lines"), ({"every_seconds": -1.0}, "every_seconds")],
)
def test_fsync_policy_is_checked(policy: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FsyncPolicy(**policy)  # type: ignore[arg-type]


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "o"
    journal = Journal(path)
    real = os.write

    def dribble(fd: int, data: bytes) -> int:
        return real(fd, bytes(data[:5]))

    monkeypatch.setattr(os, "write", dribble)
    journal.append(rec(1))
    monkeypatch.undo()
    journal.append(rec(2))
    journal.close()
    assert path.read_bytes() == rec(1) + rec(2)


def test_a_failed_write_leaves_whole_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "o"
    journal = Journal(path)
    journal.append(rec(1))
    real = os.write
    calls = 0

    def fill_disk(fd: int, data: bytes) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return real(fd, bytes(data[:7]))  # part of the line gets in...
        raise OSError(errno.ENOSPC, "No space left on device")  # ...then the disk is full

    monkeypatch.setattr(os, "write", fill_disk)
    with pytest.raises(OSError, match="No space left"):
        journal.append(rec(2))
    monkeypatch.undo()
    assert path.read_bytes() == rec(1)
    with pytest.raises(OSError, match="No space left"):  # stays failed: no line after a hole
        journal.append(rec(3))
    journal.close()
    assert path.read_bytes() == rec(1)


def test_same_file(tmp_path: Path) -> None:
    path = tmp_path / "o"
    journal = Journal(path)
    assert journal.same_file(path)
    assert not journal.same_file(tmp_path / "missing")
    (tmp_path / "other").write_bytes(b"")
    assert not journal.same_file(tmp_path / "other")
    journal.close()
