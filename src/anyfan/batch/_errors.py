"""The errors a batch job raises before or while it runs."""

from __future__ import annotations


class BatchError(Exception):
    """Base class for the batch job's errors; the message says what to do."""


class JobMismatch(BatchError):
    """The input file or the options differ from those the results were made with.

    Attributes:
        differences: One human-readable line per difference.
    """

    def __init__(self, message: str, differences: list[str]) -> None:
        super().__init__(message)
        self.differences = differences


class JournalError(BatchError):
    """The results file (or its state file) is not one this job can resume."""


class JobLocked(BatchError):
    """Another process is writing the same results file."""


class JobStopped(BatchError):
    """A failure of the whole job (billing, a refused key): every other line would fail too.

    Attributes:
        reason: What stopped it, secrets removed.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
