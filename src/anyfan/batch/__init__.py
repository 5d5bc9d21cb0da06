"""Batch jobs: a JSONL file of requests answered exactly once into a JSONL file of results.

`run` (and `run_blocking`, its twin for sync code) is the library form of
``anyfan run``: it opens the job, sends every pending request through a `Fan`
paced to the RPM and TPM limits, with the OpenAI adapter's retries, and
returns the summary; the command is a thin argument parser over it. The
pieces are public too: `BatchJob` is the crash-safe file handling (lazy input
reading, a results journal that resumes where it stopped, duplicate and
malformed lines, statistics and progress), and `send` answers an open job's
pending requests with `SendSettings`. This package uses the engine, the OpenAI
adapter and `anyfan.transport`; none of them imports it.

Typical use::

    summary = await anyfan.batch.run(
        "requests.jsonl", "results.jsonl", base_url=url, api_key=key, rpm=500
    )
    print(summary.format())
"""

from ._errors import BatchError, JobLocked, JobMismatch, JobStopped, JournalError
from ._fingerprint import InputFingerprint, fingerprint_file, redact_url
from ._job import BatchJob
from ._journal import FsyncPolicy, read_results
from ._lines import NOT_JSONL, count_lines, input_shape
from ._parse import DEFAULT_URL, DEFAULT_URLS, BatchRequest, LineProblem, parse_line
from ._progress import LineProgress, Progress, ProgressMode, TextBar, TqdmBar, make_progress
from ._run import (
    DEFAULT_BASE_URL,
    DEFAULT_CONCURRENCY,
    DEFAULT_TIMEOUT,
    PLACEHOLDER_KEY,
    job_options,
    run,
    run_blocking,
    send_settings,
)
from ._send import SendSettings, scrub, send
from ._state import state_path
from ._stats import BatchSummary, Counters, LatencyHistogram

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "DEFAULT_URLS",
    "PLACEHOLDER_KEY",
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
    "NOT_JSONL",
    "LatencyHistogram",
    "LineProblem",
    "LineProgress",
    "Progress",
    "ProgressMode",
    "SendSettings",
    "TextBar",
    "TqdmBar",
    "count_lines",
    "fingerprint_file",
    "input_shape",
    "job_options",
    "make_progress",
    "parse_line",
    "read_results",
    "redact_url",
    "run",
    "run_blocking",
    "scrub",
    "send",
    "send_settings",
    "state_path",
]
