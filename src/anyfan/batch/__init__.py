"""Batch jobs: a JSONL file of requests answered exactly once into a JSONL file of results.

This layer sits on top of the engine and adds the file handling that ``anyfan
run`` needs: lazy input reading, a crash-safe results journal that resumes
where it stopped, duplicate and malformed line handling, statistics and
progress. The engine (``anyfan._core``) knows nothing of it.

Typical use by a sender::

    with BatchJob.open("requests.jsonl", "results.jsonl", {"base_url": url}) as job:
        for request in job.pending():  # lazily, skipping what is done
            ...  # send request.body to request.url, then:
            job.record(request, status_code, body, attempts=n, latency=seconds)
        print(job.summary().format())
"""

from ._errors import BatchError, JobLocked, JobMismatch, JobStopped, JournalError
from ._fingerprint import InputFingerprint, fingerprint_file
from ._job import BatchJob
from ._journal import FsyncPolicy, read_results
from ._lines import count_lines
from ._parse import DEFAULT_URL, DEFAULT_URLS, BatchRequest, LineProblem, parse_line
from ._progress import LineProgress, Progress, ProgressMode, TextBar, TqdmBar, make_progress
from ._state import state_path
from ._stats import BatchSummary, Counters, LatencyHistogram

__all__ = [
    "DEFAULT_URL",
    "DEFAULT_URLS",
    "BatchError",
    "BatchJob",
    "BatchRequest",
    "BatchSummary",
    "Counters",
    "FsyncPolicy",
    "InputFingerprint",
    "JobLocked",
    "JobMismatch",
    "JobStopped",
    "JournalError",
    "LatencyHistogram",
    "LineProblem",
    "LineProgress",
    "Progress",
    "ProgressMode",
    "TextBar",
    "TqdmBar",
    "count_lines",
    "fingerprint_file",
    "make_progress",
    "parse_line",
    "read_results",
    "state_path",
]
