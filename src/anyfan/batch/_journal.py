"""RESULTS.jsonl as a journal: locked, repaired on open, appended one whole line at a time.

Every record is one ``os.write`` of the whole line to a descriptor opened with
``O_APPEND``. A process killed at any moment therefore leaves each line either
complete or, for the very last one only, torn; opening the journal again cuts
a torn tail back to the last newline, and that request is simply done again.
A SIGKILL loses nothing the kernel has accepted; ``fsync`` (see `FsyncPolicy`)
guards against the machine itself going down.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ._errors import JobLocked
from ._records import RecordHead, read_head

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

_CHUNK: Final = 1 << 16
_KEEP: Final = 1 << 16  # line numbers kept before pruning those not repeated


@dataclass(frozen=True, slots=True)
class FsyncPolicy:
    """When the results are forced to stable storage, besides when the job closes.

    Not needed to survive a killed process, only a crash of the machine; each
    fsync blocks the writer for about a disk flush.

    Attributes:
        every_lines: fsync after this many new lines (``None``: no line limit).
        every_seconds: fsync when a line is written this long after the last
            fsync (``None``: no time limit).
    """

    every_lines: int | None = None
    every_seconds: float | None = 1.0

    def __post_init__(self) -> None:
        if self.every_lines is not None and self.every_lines < 1:
            raise ValueError(f"every_lines must be >= 1 or None, got {self.every_lines}")
        if self.every_seconds is not None and not self.every_seconds >= 0:
            raise ValueError(f"every_seconds must be >= 0 or None, got {self.every_seconds}")


def _lock(fd: int, path: Path) -> None:
    if sys.platform == "win32":  # pragma: no cover - no advisory locks there
        return
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise JobLocked(f"another process is writing {path}; wait for it or stop it") from None


class Journal:
    """The results file, open for appending and locked against a second writer.

    Args:
        path: The results file; created if missing.
        fsync: When to fsync, besides at `close`.
        clock: Monotonic seconds, for ``fsync.every_seconds``.

    Raises:
        JobLocked: Another process holds the file.
    """

    def __init__(
        self,
        path: Path,
        fsync: FsyncPolicy = FsyncPolicy(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._policy = fsync
        self._clock = clock
        # 0o644 minus the umask, like any data file (without a mode it would be 0o777).
        self._fd = os.open(
            path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644
        )
        try:
            _lock(self._fd, path)
        except BaseException:
            os.close(self._fd)
            raise
        self._size = os.fstat(self._fd).st_size
        self._unsynced = 0
        self._synced_at = clock()
        self._broken: OSError | None = None

    @property
    def size(self) -> int:
        """Bytes in the file."""
        return self._size

    def repair(self) -> int:
        """Cut a torn last line off; return how many bytes were dropped."""
        end = self._size
        pos = end
        while pos > 0:
            start = max(0, pos - _CHUNK)
            os.lseek(self._fd, start, os.SEEK_SET)  # appends ignore the offset: O_APPEND
            newline = os.read(self._fd, pos - start).rfind(b"\n")
            if newline >= 0:
                pos = start + newline + 1
                break
            pos = start
        if pos != end:
            self._truncate(pos)
        return end - pos

    def clear(self) -> None:
        """Empty the file, to start over."""
        self._truncate(0)

    def _truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        os.fsync(self._fd)
        self._size = size

    def heads(self) -> Iterator[RecordHead]:
        """Read back each line's input line number and success, in file order.

        Raises:
            JournalError: A line is not a result record; the message names it.
        """
        with open(self.path, "rb", buffering=1 << 20) as f:
            for number, raw in enumerate(f, 1):
                yield read_head(raw, f"{self.path}, line {number},")

    def append(self, data: bytes) -> None:
        """Append one whole line (``data`` ends with a newline).

        If the write fails (a full disk, say), the file is cut back to its last
        whole line and the error is raised; later appends raise it again.
        """
        if self._broken is not None:
            raise self._broken
        try:
            written = os.write(self._fd, data)
            while written < len(data):  # a short write: rare, but regular files allow it
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            self._broken = exc
            with contextlib.suppress(OSError):  # if this fails too, the next open repairs it
                os.ftruncate(self._fd, self._size)
            raise
        self._size += written
        self._unsynced += 1
        policy = self._policy
        if (policy.every_lines is not None and self._unsynced >= policy.every_lines) or (
            policy.every_seconds is not None
            and self._clock() - self._synced_at >= policy.every_seconds
        ):
            self.sync()

    def sync(self) -> None:
        """Fsync the lines written so far."""
        if self._unsynced:
            os.fsync(self._fd)
            self._unsynced = 0
        self._synced_at = self._clock()

    def close(self) -> None:
        """fsync, unlock and close (idempotent)."""
        if self._fd < 0:
            return
        try:
            if self._broken is None:
                self.sync()
        finally:
            os.close(self._fd)
            self._fd = -1

    def same_file(self, other: Path) -> bool:
        """Whether ``other`` is this very file (say, the input given as the output)."""
        try:
            st = os.stat(other)
        except OSError:
            return False
        mine = os.fstat(self._fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def read_results(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield the result of each input line in a results file, once, superseded records left out.

    A results file is a journal: ``--retry-failed`` (``retry_failed=True``)
    appends a line's new record after its error instead of rewriting the
    file. The rule is that a line's last record is its result. This reads the
    file twice: first the line numbers, to find the few lines answered more
    than once, then the records, yielding each line's last one, in file order.

    Raises:
        JournalError: A line is not a result record; the message names it.
    """
    from ._bitmap import Bitmap

    seen, repeated = Bitmap(), Bitmap()
    last: dict[int, int] = {}
    limit = _KEEP
    with open(path, "rb", buffering=1 << 20) as f:
        for number, raw in enumerate(f, 1):
            line = read_head(raw, f"{path}, line {number},").line
            if not seen.add(line):
                repeated.add(line)
            last[line] = number  # pruned below to the lines seen more than once
            if len(last) > limit:
                last = {k: v for k, v in last.items() if k in repeated}
                limit = max(_KEEP, 2 * len(last))
    last = {k: v for k, v in last.items() if k in repeated}
    with open(path, "rb", buffering=1 << 20) as f:
        for number, raw in enumerate(f, 1):
            record = json.loads(raw)
            line = record["line"]
            if line in repeated and last[line] != number:
                continue
            yield record
