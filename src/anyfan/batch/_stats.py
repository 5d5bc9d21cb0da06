"""Counting what a batch job did, and summing it up (sans-I/O)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Final

from ._causes import Cause

#: The exit code of a job stopped by a failure of the whole job (billing, auth).
EXIT_STOPPED: Final = 3
_FLOOR: Final = 1e-6  # seconds; anything shorter counts as zero
_ZERO: Final = -(1 << 30)  # the bucket of those


class LatencyHistogram:
    """Quantiles of millions of durations in bounded memory.

    Values fall into buckets whose bounds grow geometrically, so a quantile is
    known to within ``relative_error`` of the true value. Durations from 1 µs to
    a day need at most about 1,250 buckets at 1% error, however many values.

    Args:
        relative_error: Largest relative error of a quantile, in (0, 1).
    """

    __slots__ = ("_buckets", "_log_gamma", "count", "max", "min", "relative_error", "total")

    def __init__(self, relative_error: float = 0.01) -> None:
        if not 0 < relative_error < 1:
            raise ValueError(f"relative_error must be in (0, 1), got {relative_error}")
        self.relative_error = relative_error
        self._log_gamma = math.log((1 + relative_error) / (1 - relative_error))
        self._buckets: dict[int, int] = {}
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0

    def add(self, seconds: float) -> None:
        """Count one duration (negative ones count as zero)."""
        if seconds > _FLOOR:
            key = math.ceil(math.log(seconds) / self._log_gamma)
        else:
            key = _ZERO
            seconds = max(seconds, 0.0)
        buckets = self._buckets
        buckets[key] = buckets.get(key, 0) + 1
        self.count += 1
        self.total += seconds
        if seconds < self.min:
            self.min = seconds
        if seconds > self.max:
            self.max = seconds

    def quantile(self, q: float) -> float | None:
        """Estimate the ``q``-quantile (0 <= q <= 1, nearest rank); ``None`` if no values."""
        if not 0 <= q <= 1:
            raise ValueError(f"q must be in [0, 1], got {q}")
        if not self.count:
            return None
        # Nearest rank: the smallest value with at least a fraction q of all values at or below it
        # (the epsilon keeps 0.95 * 100 from rounding up to rank 96).
        rank = max(1, math.ceil(q * self.count - 1e-9))
        keys = sorted(self._buckets)
        counts = itertools.accumulate(self._buckets[k] for k in keys)
        key = next(k for k, seen in zip(keys, counts, strict=True) if seen >= rank)
        if key == _ZERO:
            value = 0.0
        else:  # the point of the bucket (gamma^(k-1), gamma^k] with the least relative error
            gamma = math.exp(self._log_gamma)
            value = 2 * math.exp(key * self._log_gamma) / (gamma + 1)
        return min(max(value, self.min), self.max)

    @property
    def buckets(self) -> int:
        """Buckets in use (the memory it takes)."""
        return len(self._buckets)


@dataclass(slots=True)
class Counters:
    """Running totals of a batch job, updated as results are recorded.

    Attributes:
        already_ok: Lines answered with a 2xx response before this run.
        already_failed: Lines that had failed before this run.
        ok: Requests answered with a 2xx response in this run.
        failed: Requests that finally failed in this run (an error, or a
            non-2xx response).
        malformed: Lines found malformed in this run.
        duplicate: Lines whose ``custom_id`` an earlier line had, found in this run.
        blank: Blank lines skipped in this run.
        retries: Attempts beyond the first, over this run's requests.
        rate_limited: 429 responses seen in this run, as reported by the sender.
        tokens: Tokens the responses reported using (``usage.total_tokens``).
        first_at: Clock time the first request was handed out, if any.
        last_at: Clock time of the latest result, if any.
        first_start: Earliest clock time a recorded request was first sent
            (its result's time less its latency), if any.
        last_start: Latest such time, if any.
        latency: This run's request latencies.
        causes: This run's failures by cause (see `anyfan.batch._causes`), in
            the order first seen.
        stopped: Why the job was stopped before its end, if it was.
        burst: Requests the rate limit lets start at once (the sender sets it),
            for measuring the pace: they are not intervals of it.
    """

    already_ok: int = 0
    already_failed: int = 0
    ok: int = 0
    failed: int = 0
    malformed: int = 0
    duplicate: int = 0
    blank: int = 0
    retries: int = 0
    rate_limited: int = 0
    tokens: int = 0
    first_at: float | None = None
    last_at: float | None = None
    first_start: float | None = None
    last_start: float | None = None
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    causes: dict[str, Cause] = field(default_factory=dict)
    stopped: str | None = None
    burst: float = 1.0

    def note_cause(self, cause: str, message: str) -> None:
        """Count one failure of this run under ``cause``, keeping the first message."""
        seen = self.causes.get(cause)
        if seen is None:
            self.causes[cause] = Cause(1, message)
        else:
            seen.count += 1

    def note_request(self, now: float, latency: float) -> None:
        """Note a request's result at clock time ``now``, ``latency`` seconds after it was sent."""
        self.last_at = now
        start = now - max(latency, 0.0)
        if self.first_start is None or start < self.first_start:
            self.first_start = start
        if self.last_start is None or start > self.last_start:
            self.last_start = start

    @property
    def already_done(self) -> int:
        """Lines done before this run."""
        return self.already_ok + self.already_failed

    @property
    def errors(self) -> int:
        """Lines that ended as errors in this run."""
        return self.failed + self.malformed + self.duplicate

    @property
    def done(self) -> int:
        """Lines dealt with so far, this run and before (blank ones included)."""
        return self.already_done + self.ok + self.errors + self.blank

    @property
    def done_this_run(self) -> int:
        """Lines dealt with in this run."""
        return self.ok + self.errors + self.blank

    def summary(self) -> BatchSummary:
        """Snapshot the totals, with latency quantiles and achieved rates."""
        elapsed = 0.0
        if self.first_at is not None and self.last_at is not None:
            elapsed = max(self.last_at - self.first_at, 0.0)
        sent = self.ok + self.failed
        requests_per_minute = tokens_per_minute = None
        span = 0.0
        if self.first_start is not None and self.last_start is not None:
            span = self.last_start - self.first_start
        if self.first_start is not None:
            # Fencepost: n requests paced at a steady rate, the first `burst` of them at
            # once, are n - burst intervals apart, and the last one's latency is no part of
            # the pace the server sees. One request (or all at one instant) has no rate.
            intervals = sent - max(self.burst, 1.0)
            if intervals > 0 and span > 0:
                requests_per_minute = 60 * intervals / span
                tokens_per_minute = 60 * self.tokens * intervals / sent / span
        elif elapsed > 0:  # only the totals are known (counters filled in by hand)
            requests_per_minute = 60 * sent / elapsed
            tokens_per_minute = 60 * self.tokens / elapsed
        return BatchSummary(
            ok=self.ok,
            failed=self.failed,
            malformed=self.malformed,
            duplicate=self.duplicate,
            blank=self.blank,
            already_ok=self.already_ok,
            already_failed=self.already_failed,
            retries=self.retries,
            rate_limited=self.rate_limited,
            tokens=self.tokens,
            elapsed=elapsed,
            p50=self.latency.quantile(0.50),
            p95=self.latency.quantile(0.95),
            p99=self.latency.quantile(0.99),
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            causes=tuple((name, c.count, c.message) for name, c in self.causes.items()),
            stopped=self.stopped,
        )


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """What a batch job did: counts for the whole file, timings for this run.

    Attributes:
        ok: Requests answered with a 2xx response in this run.
        failed: Requests that finally failed in this run.
        malformed: Malformed lines found in this run.
        duplicate: Duplicate ``custom_id`` lines found in this run.
        blank: Blank lines skipped in this run.
        already_ok: Lines answered with a 2xx response before this run.
        already_failed: Lines that had failed before this run (any kind).
        retries: Attempts beyond the first in this run.
        rate_limited: 429 responses seen in this run.
        tokens: Tokens used in this run, as the responses reported.
        elapsed: Seconds from the first request handed out to the last result.
        p50: Median request latency in seconds (``None``: no requests).
        p95: 95th percentile latency in seconds.
        p99: 99th percentile latency in seconds.
        requests_per_minute: Requests sent per minute: the intervals between
            the first and the last request's first send, over that span
            (``None``: no time passed).
        tokens_per_minute: Tokens used per minute, over the same span.
        causes: This run's failures by cause: ``(cause, count, first message)``.
        stopped: Why the job stopped before its end, or ``None``.
    """

    ok: int
    failed: int
    malformed: int
    duplicate: int
    blank: int
    already_ok: int
    already_failed: int
    retries: int
    rate_limited: int
    tokens: int
    elapsed: float
    p50: float | None
    p95: float | None
    p99: float | None
    requests_per_minute: float | None
    tokens_per_minute: float | None
    causes: tuple[tuple[str, int, str], ...] = ()
    stopped: str | None = None

    @property
    def total_ok(self) -> int:
        """Lines of the file answered successfully, this run and before."""
        return self.ok + self.already_ok

    @property
    def total_failed(self) -> int:
        """Lines of the file that ended as errors, this run and before."""
        return self.failed + self.malformed + self.duplicate + self.already_failed

    @property
    def exit_code(self) -> int:
        """0: every line answered with success; `EXIT_STOPPED`: stopped early; else 1."""
        if self.stopped is not None:
            return EXIT_STOPPED
        return 1 if self.total_failed else 0

    def format(self, *, rpm_limit: float | None = None, tpm_limit: float | None = None) -> str:
        """Render the summary as a few lines of text, rates set against the limits if given."""
        total = self.total_ok + self.total_failed
        lines = [f"{total:,} results in {format_duration(self.elapsed)}"]
        lines.append(
            f"  ok      {self.total_ok:>12,}"
            + (f"  ({self.already_ok:,} before this run)" if self.already_ok else "")
        )
        details = [
            f"{n:,} {what}"
            for n, what in (
                (self.failed, "sent"),
                (self.malformed, "malformed lines"),
                (self.duplicate, "duplicate custom_id"),
                (self.already_failed, "before this run"),
            )
            if n
        ]
        lines.append(
            f"  failed  {self.total_failed:>12,}" + (f"  ({', '.join(details)})" if details else "")
        )
        for cause, count, message in self.causes:
            lines.append(f"    {count:>10,}  {cause}" + (f": {message}" if message else ""))
        if self.p50 is not None and self.p95 is not None and self.p99 is not None:
            lines.append(
                f"  latency p50 {format_seconds(self.p50)}, p95 {format_seconds(self.p95)}, "
                f"p99 {format_seconds(self.p99)} over {self.ok + self.failed:,} requests"
            )
        rates = []
        if self.requests_per_minute is not None:
            rates.append(_rate(self.requests_per_minute, rpm_limit, "RPM"))
        if self.tokens_per_minute is not None and (self.tokens or tpm_limit):
            rates.append(_rate(self.tokens_per_minute, tpm_limit, "TPM"))
        rates += [f"{self.retries:,} retries", f"{self.rate_limited:,} x 429"]
        lines.append("  " + ", ".join(rates))
        if self.stopped is not None:
            lines.append(f"  stopped: {self.stopped}")
        return "\n".join(lines)


def _rate(value: float, limit: float | None, unit: str) -> str:
    text = f"{value:,.0f} {unit}"
    if limit:
        text += f" (limit {limit:,.0f}: {100 * value / limit:.1f}%)"
    return text


def format_seconds(seconds: float) -> str:
    """Format a latency readably: ``"812 ms"``, ``"2.10 s"``, ``"0.40 ms"``."""
    if seconds < 0.001:
        return f"{seconds * 1000:.2f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def format_duration(seconds: float | None) -> str:
    """Format a duration as ``H:MM:SS`` or ``M:SS``; ``"?"`` for unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    whole = max(int(seconds + 0.5), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"
