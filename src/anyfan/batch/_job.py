"""`BatchJob`: a file of requests answered exactly once into a results file, across crashes."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._bitmap import Bitmap
from ._causes import error_cause, job_stopper, response_cause
from ._errors import JobMismatch, JobStopped, JournalError
from ._fingerprint import (
    InputFingerprint,
    RedactedOptions,
    canonical_options,
    diff_input,
    diff_options,
    diff_secrets,
    fingerprint_file,
    redact_options,
)
from ._ids import IdRegistry
from ._journal import FsyncPolicy, Journal
from ._lines import numbered_lines
from ._parse import DEFAULT_URL, DEFAULT_URLS, BatchRequest, LineProblem, parse_line
from ._records import Scrubber, encode_error, encode_response, usage_tokens
from ._state import read_state, state_key, state_path, write_state
from ._stats import BatchSummary, Counters

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Collection, Iterator, Mapping
    from types import TracebackType

    from ._progress import Progress

_RESTART_HINT = (
    "Rerun with --restart (restart=True) to discard those results and start over, "
    "or with --force (force=True) to keep them and continue."
)


class BatchJob:
    """A batch job over one input file and one results file; make one with `BatchJob.open`.

    Iterate `pending` for the requests still to answer and give each one's
    outcome to `record` or `record_error`, in any order, from the thread that
    iterates or any other. Close the job when done (or use it as a context
    manager). Malformed lines and duplicate ids never reach the caller: they
    are recorded as errors while `pending` reads past them.

    Attributes:
        input_path: The requests file.
        output_path: The results file.
        state_path: The state file beside it.
        counters: Running totals (see `summary`).
        progress: Where progress is reported, or ``None`` (the default).
        resumed: Whether the results file already held results when opened.
        repaired_bytes: Bytes of a torn last line cut off when opened.
    """

    def __init__(
        self,
        *,
        input_path: Path,
        output_path: Path,
        journal: Journal,
        done: Bitmap,
        failed: Bitmap,
        counters: Counters,
        default_url: str,
        urls: Collection[str],
        clock: Callable[[], float],
        on_problem: Callable[[LineProblem], None] | None,
        repaired_bytes: int,
        scrubber: Scrubber | None = None,
        retry_failed: bool = False,
    ) -> None:
        self.input_path = input_path
        self.output_path = output_path
        self.state_path = state_path(output_path)
        self.counters = counters
        self.progress: Progress | None = None
        self.resumed = bool(len(done))
        self.repaired_bytes = repaired_bytes
        self._journal = journal
        self._done = done
        self._failed = failed
        self._retry_failed = retry_failed
        self._retrying = Bitmap()
        self._default_url = default_url
        self._urls = urls
        self._clock = clock
        self._on_problem = on_problem
        self._lock = threading.Lock()
        self._handed_out = 0
        self._recorded = 0
        self._pending_started = False
        self._closed = False
        self._scrubber = scrubber or Scrubber()

    @classmethod
    def open(
        cls,
        input_path: str | os.PathLike[str],
        output_path: str | os.PathLike[str],
        options: Mapping[str, Any] | None = None,
        *,
        restart: bool = False,
        force: bool = False,
        default_url: str = DEFAULT_URL,
        urls: Collection[str] = DEFAULT_URLS,
        fsync: FsyncPolicy = FsyncPolicy(),  # noqa: B008 - frozen, so sharing it is safe
        clock: Callable[[], float] = time.monotonic,
        on_problem: Callable[[LineProblem], None] | None = None,
        secrets: Collection[str] = (),
        retry_failed: bool = False,
    ) -> BatchJob:
        """Open a job, resuming whatever the results file already holds.

        A fresh job writes a state file beside the results, recording the
        input's fingerprint and ``options``. Reopening it cuts off a torn last
        line, checks the input and options against that record, and reads back
        which lines are done, so that `pending` skips them.

        Args:
            input_path: The requests file (JSONL).
            output_path: The results file (JSONL); created if missing.
            options: The settings that affect results (base URL, model
                overrides, attempts, ...), as plain JSON values. Never the API
                key: it would be stored, so keys that look secret are refused.
            restart: Discard any existing results and start over.
            force: Continue even though the input or options changed, or the
                results file has no state file; the new ones are recorded.
            default_url: Where bare request bodies are posted.
            urls: The endpoints Batch-shaped lines may name.
            fsync: When results are forced to disk, besides at `close`.
            clock: Monotonic seconds, for rates and the fsync policy.
            on_problem: Called with each malformed or duplicate line found.
            secrets: Texts never to be written (the API key): replaced by
                ``[redacted]`` in every result line. The password of a URL
                among ``options`` is added, and only its redacted form and a
                keyed hash of it are stored.
            retry_failed: Send again the requests whose last result is an
                error (not malformed or duplicate lines, which would fail the
                same way). Each new result is appended and supersedes the
                error: the last record of a line is its result.

        Raises:
            JobMismatch: The input or options changed (without ``force``).
            JournalError: The results file was not written by an anyfan batch
                job with a state file (without ``restart`` or ``force``), or is
                damaged other than in its last line.
            JobLocked: Another process has the results file open as a job.
            ValueError: Both ``restart`` and ``force``, or the input is the output.
        """
        if restart and force:
            raise ValueError("restart and force exclude each other: choose one")
        source, target = Path(input_path), Path(output_path)
        current = fingerprint_file(source)
        fingerprint = {**current.to_json(), "path": str(source.absolute())}
        key = state_key(state_path(target))
        redacted = redact_options(options or {}, key)
        wanted = canonical_options(
            {**redacted.options, "batch.default_url": default_url, "batch.urls": sorted(urls)}
        )
        journal = Journal(target, fsync, clock)
        try:
            if journal.same_file(source):
                raise ValueError(f"the results file {target} is the input file")
            repaired = journal.repair()
            if restart:
                journal.clear()
            elif journal.size:
                cls._check_state(target, current, wanted, redacted, force)
            done, failed, counters = cls._read_done(journal)
            # Only now: a run that stops above must leave the old record in place.
            write_state(state_path(target), fingerprint, wanted, hashes=redacted.hashes, key=key)
        except BaseException:
            journal.close()
            raise
        return cls(
            input_path=source,
            output_path=target,
            journal=journal,
            done=done,
            failed=failed,
            counters=counters,
            default_url=default_url,
            urls=urls,
            clock=clock,
            on_problem=on_problem,
            repaired_bytes=repaired,
            scrubber=Scrubber([*secrets, *redacted.secrets]),
            retry_failed=retry_failed,
        )

    @staticmethod
    def _read_done(journal: Journal) -> tuple[Bitmap, Bitmap, Counters]:
        # The superseding rule: a line's last record is its result. Only an error may be
        # superseded (by --retry-failed); a line answered with success is answered for good.
        done, failed, counters = Bitmap(), Bitmap(), Counters()
        try:
            for head in journal.heads():
                if not done.add(head.line):
                    if not failed.discard(head.line):
                        raise JournalError(
                            f"{journal.path} answers input line {head.line} again after a "
                            "success, so it was not written by one anyfan batch job"
                        )
                    counters.already_failed -= 1
                if head.ok:
                    counters.already_ok += 1
                else:
                    failed.add(head.line)
                    counters.already_failed += 1
        except JournalError as exc:
            raise JournalError(
                f"{exc}. Repair or remove that line, or rerun with --restart (restart=True) "
                "to discard the results and start over."
            ) from None
        return done, failed, counters

    @staticmethod
    def _check_state(
        target: Path,
        current: InputFingerprint,
        wanted: dict[str, Any],
        redacted: RedactedOptions,
        force: bool,
    ) -> None:
        spath = state_path(target)
        state = read_state(spath)
        if state is None:
            if force:
                return
            raise JournalError(
                f"{target} already holds data but has no state file ({spath.name}), so "
                f"anyfan cannot tell what it was made from. {_RESTART_HINT}"
            )
        differences = diff_input(state["input"], current)
        differences += diff_options(state["options"], wanted)
        # redacted.hashes were made with the key stored in this same state file.
        old_hashes = state.get("secrets")
        differences += diff_secrets(old_hashes if isinstance(old_hashes, dict) else {}, redacted)
        if differences and not force:
            listed = "".join(f"\n  - {d}" for d in differences)
            raise JobMismatch(
                f"{target} holds results for a different input or different options:"
                f"{listed}\n{_RESTART_HINT}",
                differences,
            )

    def pending(self) -> Iterator[BatchRequest]:
        """Yield, lazily and in file order, each request not yet answered.

        Lines already answered are skipped; blank lines are skipped; malformed
        lines and duplicate ids are recorded as errors on the way and not
        yielded. Only one pass is allowed.

        Raises:
            RuntimeError: Called a second time.
        """
        if self._pending_started:
            raise RuntimeError("pending() can be iterated only once per job")
        self._pending_started = True
        registry = IdRegistry()
        done, counters = self._done, self.counters
        for number, raw in numbered_lines(self.input_path):
            item = parse_line(raw, number, default_url=self._default_url, urls=self._urls)
            if item is None:
                counters.blank += 1
                continue
            if isinstance(item, LineProblem):
                if number not in done:
                    self._write_problem(item)
                continue
            # Done lines still claim their ids, so later lines are judged as in one unbroken run.
            if item.raw_body is None:
                claimed = registry.claim(item.custom_id)
            else:
                claimed = registry.claim_bare(number)
            if number in done:
                if not (self._retry_failed and claimed and number in self._failed):
                    continue
                self._retrying.add(number)
            elif not claimed:
                self._write_problem(
                    LineProblem(
                        number,
                        "duplicate_custom_id",
                        f"line {number}: custom_id {json.dumps(item.custom_id)} "
                        "was already used by an earlier line",
                        item.custom_id,
                    )
                )
                continue
            if counters.first_at is None:
                counters.first_at = self._clock()
            self._handed_out += 1
            yield item

    def record(
        self,
        request: BatchRequest,
        status_code: int,
        body: Any,
        *,
        attempts: int = 1,
        latency: float = 0.0,
        tokens: int | None = None,
        raw: bytes | None = None,
    ) -> None:
        """Record the HTTP response that finally answered ``request``.

        A 2xx status counts as success, anything else as a failure, except a
        failure of the whole job: a 401, a 403 or a billing 429
        (``insufficient_quota``) is not recorded, since every other line
        would fail the same way. It stops the job instead: `JobStopped` is
        raised, and the line stays pending for the rerun once the cause is
        fixed.

        Args:
            request: A request from `pending`.
            status_code: The final response's status.
            body: Its body: a JSON value, or the raw bytes received (checked
                to be JSON, else kept as a string).
            attempts: How many times it was sent.
            latency: Seconds from the first attempt to the final response.
            tokens: Tokens it used; by default the body's ``usage.total_tokens``.
            raw: The bytes received, when ``body`` is their decoded JSON: they
                are written verbatim, the cheapest way to record a response.

        Raises:
            JobStopped: The response is a failure of the whole job (not recorded).
            RuntimeError: ``request`` was recorded already.
            OSError: Writing failed (a full disk, say); the file stays whole.
        """
        if not 200 <= status_code < 300:
            reason = job_stopper(status_code, body if raw is None else raw)
            if reason is not None:
                self.stop(f"line {request.line}: {reason}")
                raise JobStopped(self.counters.stopped or reason)
        data, value = encode_response(
            request.line, request.custom_id, status_code, body, attempts, latency, raw
        )
        ok = 200 <= status_code < 300
        with self._lock:
            self._append(request.line, data)
            counters = self.counters
            if ok:
                counters.ok += 1
            else:
                counters.failed += 1
            counters.tokens += usage_tokens(value) if tokens is None else tokens
            if not ok:
                cause, message = response_cause(status_code, body if raw is None else raw)
                counters.note_cause(cause, self._scrubber.text(message))
            self._count_request(attempts, latency)

    def record_error(
        self,
        request: BatchRequest,
        error: Mapping[str, Any] | BaseException,
        *,
        attempts: int = 1,
        latency: float = 0.0,
    ) -> None:
        """Record that ``request`` finally failed without a response to keep.

        Args:
            request: A request from `pending`.
            error: The error: a JSON object (such as an API's ``error``), or an
                exception, recorded as its type and message.
            attempts: How many times it was sent.
            latency: Seconds from the first attempt to giving up.

        Raises:
            RuntimeError: ``request`` was recorded already.
            OSError: Writing failed (a full disk, say); the file stays whole.
        """
        if isinstance(error, BaseException):
            error = {"type": type(error).__name__, "message": str(error)}
        data = encode_error(request.line, request.custom_id, error, attempts, latency)
        with self._lock:
            self._append(request.line, data)
            self.counters.failed += 1
            cause, message = error_cause(error)
            self.counters.note_cause(cause, self._scrubber.text(message))
            self._count_request(attempts, latency)

    def note_rate_limited(self, count: int = 1) -> None:
        """Count 429 responses, for progress and the summary (the sender calls this)."""
        with self._lock:
            self.counters.rate_limited += count
            if self.progress is not None:
                self.progress.update(self.counters)

    def _append(self, line: int, data: bytes) -> None:
        if self._closed:
            raise RuntimeError("the batch job is closed")
        retry = line in self._retrying
        if line in self._done and not retry:
            raise RuntimeError(f"input line {line} was recorded already")
        if self._scrubber:
            data = self._scrubber.line(data)
        self._journal.append(data)
        if retry:  # its new record supersedes the error: it now counts in this run
            self._retrying.discard(line)
            self._failed.discard(line)
            self.counters.already_failed -= 1
        self._done.add(line)

    def _count_request(self, attempts: int, latency: float) -> None:
        counters = self.counters
        self._recorded += 1
        counters.retries += max(attempts - 1, 0)
        counters.latency.add(latency)
        counters.note_request(self._clock(), latency)
        if self.progress is not None:
            self.progress.update(counters)

    def _write_problem(self, problem: LineProblem) -> None:
        data = encode_error(problem.line, problem.custom_id, problem.error(), 0, 0.0)
        with self._lock:
            self._append(problem.line, data)
            if problem.kind == "malformed_line":
                self.counters.malformed += 1
            else:
                self.counters.duplicate += 1
            if self.progress is not None:
                self.progress.update(self.counters)
        if self._on_problem is not None:
            self._on_problem(problem)

    def scrub(self, text: str) -> str:
        """``text`` with the job's secrets replaced by ``[redacted]``, for printing."""
        return self._scrubber.text(text)

    def stop(self, reason: str) -> None:
        """Note that the job stops before its end, and why (shown by the summary)."""
        with self._lock:
            self.counters.stopped = self.scrub(reason)

    @property
    def in_flight(self) -> int:
        """Requests handed out by `pending` and not recorded yet."""
        return self._handed_out - self._recorded

    def summary(self) -> BatchSummary:
        """Sum up so far: counts for the whole file, latency and rates for this run."""
        return self.counters.summary()

    def close(self) -> None:
        """Flush the results to disk, release the file and finish the progress display.

        Requests still in flight are simply not recorded: a rerun sends them
        again. Closing twice is harmless.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self._journal.close()
        finally:
            if self.progress is not None:
                self.progress.close(self.counters)

    def __enter__(self) -> BatchJob:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.input_path)!r} -> {str(self.output_path)!r}, "
            f"done={self.counters.done:,}, in_flight={self.in_flight})"
        )
