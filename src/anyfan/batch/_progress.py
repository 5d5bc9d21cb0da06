"""Showing a batch job's progress: a live bar on a terminal, plain lines elsewhere.

A reporter is only called when the job has one; with progress off, the job
does not even check the clock.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
from typing import TYPE_CHECKING, Any, Literal, Protocol, TextIO

from ._stats import Counters, format_duration

if TYPE_CHECKING:
    from collections.abc import Callable

ProgressMode = Literal["auto", "bar", "lines", "off"]


class Progress(Protocol):
    """What a batch job reports its progress to."""

    def update(self, counters: Counters) -> None:
        """Note new totals (called after every result: must be cheap)."""

    def close(self, counters: Counters) -> None:
        """Show the final totals and release the display."""


def status_text(counters: Counters, total: int | None, elapsed: float) -> str:
    """One status line: done/total, rate, ETA, retries, 429s and errors."""
    done = counters.done
    rate = counters.done_this_run / elapsed if elapsed > 0 else 0.0
    if total is None:
        head = f"{done:,} done"
        eta = ""
    else:
        percent = 100 * done / total if total else 100.0
        head = f"{done:,}/{total:,} ({percent:.1f}%)"
        left = max(total - done, 0)
        eta = f", ETA {format_duration(left / rate if rate > 0 else None)}"
    return (
        f"{head}, {rate:,.0f} lines/s{eta}, {counters.retries:,} retries, "
        f"{counters.rate_limited:,} x 429, {counters.errors:,} errors"
    )


class _Throttled:
    """Renders at most once per ``interval`` seconds, and always on close."""

    def __init__(
        self, total: int | None, interval: float, clock: Callable[[], float], stream: TextIO
    ) -> None:
        if not interval >= 0:
            raise ValueError(f"interval must be >= 0, got {interval}")
        self.total = total
        self.stream = stream
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._next = self._started + interval

    def update(self, counters: Counters) -> None:
        now = self._clock()
        if now >= self._next:
            self._next = now + self._interval
            self.render(counters, now - self._started, final=False)

    def close(self, counters: Counters) -> None:
        self.render(counters, self._clock() - self._started, final=True)

    def render(self, counters: Counters, elapsed: float, *, final: bool) -> None:
        raise NotImplementedError


class LineProgress(_Throttled):
    """Plain periodic lines, for logs and pipes.

    Args:
        total: Lines in the input, if known.
        stream: Where to write.
        interval: Seconds between lines.
        clock: Monotonic seconds.
    """

    def __init__(
        self,
        total: int | None,
        stream: TextIO,
        *,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(total, interval, clock, stream)

    def render(self, counters: Counters, elapsed: float, *, final: bool) -> None:
        """Write one status line."""
        self.stream.write(f"anyfan: {status_text(counters, self.total, elapsed)}\n")
        self.stream.flush()


class TextBar(_Throttled):
    """A one-line live status redrawn in place with a carriage return, without tqdm.

    Args:
        total: Lines in the input, if known.
        stream: The terminal to draw on.
        interval: Seconds between redraws.
        clock: Monotonic seconds.
    """

    def __init__(
        self,
        total: int | None,
        stream: TextIO,
        *,
        interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(total, interval, clock, stream)
        self._width = 0

    def render(self, counters: Counters, elapsed: float, *, final: bool) -> None:
        """Redraw the status line (and end it, when final)."""
        text = status_text(counters, self.total, elapsed)
        pad = " " * max(self._width - len(text), 0)  # wipe what a longer line left behind
        self._width = len(text)
        self.stream.write(f"\r{text}{pad}" + ("\n" if final else ""))
        self.stream.flush()


class TqdmBar(_Throttled):
    """A tqdm bar (the ``progress`` extra), fed at most once per ``interval``.

    Args:
        total: Lines in the input, if known.
        stream: The terminal to draw on.
        initial: Lines done before this run.
        interval: Seconds between updates.
        clock: Monotonic seconds.
    """

    def __init__(
        self,
        total: int | None,
        stream: TextIO,
        *,
        initial: int = 0,
        interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        tqdm = importlib.import_module("tqdm").tqdm

        super().__init__(total, interval, clock, stream)
        self._shown = initial
        # tqdm leaves `initial` out of its rate, so lines done before this run don't inflate it.
        self._bar: Any = tqdm(
            total=total, initial=initial, file=stream, unit="line", dynamic_ncols=True
        )

    def render(self, counters: Counters, elapsed: float, *, final: bool) -> None:
        """Advance the bar to the current totals."""
        done = counters.done
        self._bar.set_postfix_str(
            f"retries={counters.retries:,} 429s={counters.rate_limited:,} "
            f"errors={counters.errors:,}",
            refresh=False,
        )
        self._bar.update(done - self._shown)
        self._shown = done
        if final:
            self._bar.close()


def make_progress(
    mode: ProgressMode,
    total: int | None,
    *,
    initial: int = 0,
    stream: TextIO | None = None,
    use_tqdm: bool | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Progress | None:
    """Choose a progress reporter.

    Args:
        mode: ``"bar"`` (live bar), ``"lines"`` (periodic lines), ``"off"``,
            or ``"auto"``: a bar if ``stream`` is a terminal, else lines.
        total: Lines in the input, if known (see `count_lines`).
        initial: Lines done before this run (``job.counters.already_done``).
        stream: Where to write; standard error by default.
        use_tqdm: Draw the bar with tqdm; by default, if it is installed.
        clock: Monotonic seconds.

    Returns:
        The reporter, or ``None`` when ``mode`` is ``"off"``.
    """
    if mode not in ("auto", "bar", "lines", "off"):
        raise ValueError(f"progress must be 'auto', 'bar', 'lines' or 'off', got {mode!r}")
    if mode == "off":
        return None
    out = sys.stderr if stream is None else stream
    if mode == "auto":
        mode = "bar" if out.isatty() else "lines"
    if mode == "lines":
        return LineProgress(total, out, clock=clock)
    if use_tqdm is None:
        use_tqdm = importlib.util.find_spec("tqdm") is not None
    if use_tqdm:
        return TqdmBar(total, out, initial=initial, clock=clock)
    return TextBar(total, out, clock=clock)
