"""Reporting progress as outcomes arrive: a tqdm bar, plain lines, and the ``on_outcome`` hook.

tqdm is an optional extra (``anyfan[progress]``), imported only when a bar is
drawn; ``tqdm.auto`` picks the notebook widget inside Jupyter. Where no one
watches a bar (output to a file, a pipe or a log collector) a plain line is
written at most every 10 s instead, as the CLI does: a redrawn bar would
flood the log with about ten lines a second. With neither option set, the
engine is handed no observer at all, so there is no cost.
"""

from __future__ import annotations

import operator
import sys
import time
from collections.abc import Callable
from typing import IO, Any, Final, TypeAlias, TypedDict

from ._outcome import Outcome

Observer = Callable[[Outcome[Any, Any]], None]

#: How often, in outcomes, the bar's error and retry counts are refreshed.
_POSTFIX_EVERY = 64

#: Seconds between two plain progress lines, when the output is not a terminal.
LINE_INTERVAL: Final = 10.0


class ProgressOptions(TypedDict, total=False):
    """What ``progress=`` accepts besides ``True`` or a label: a label and display settings.

    Every key is optional. On a terminal (or in Jupyter) they go to tqdm;
    elsewhere a plain line is written to ``file`` at most every
    ``mininterval`` seconds (10 by default).

    Attributes:
        desc: The label in front of the bar or line.
        file: Where to draw: standard error by default.
        leave: Keep the finished bar on screen (tqdm's default: True).
        position: Which line the bar takes, for several bars at once.
        mininterval: Least seconds between two redraws (tqdm's default 0.1
            on a terminal; 10 for plain lines).
    """

    desc: str
    file: IO[str]
    leave: bool
    position: int
    mininterval: float


#: ``progress=``: ``False`` (off), ``True``, a label, or `ProgressOptions`.
Progress: TypeAlias = bool | str | ProgressOptions

_OPTION_TYPES: Final[dict[str, type | tuple[type, ...]]] = {
    "desc": str,
    "file": object,
    "leave": bool,
    "position": int,
    "mininterval": (int, float),
}


def check_progress(progress: object) -> ProgressOptions | None:
    """Validate ``progress=``; return its options, or ``None`` when it is off.

    Raises:
        TypeError: If ``progress`` is not a bool, a label or a dict of known options.
        ValueError: If ``mininterval`` is negative or not finite.
    """
    if isinstance(progress, bool):
        return ProgressOptions() if progress else None
    if isinstance(progress, str):
        return ProgressOptions(desc=progress)
    if not isinstance(progress, dict):
        raise TypeError(
            f"progress must be a bool, a label or a dict of ProgressOptions, got {progress!r}"
        )
    for key, value in progress.items():
        expected = _OPTION_TYPES.get(key)
        if expected is None:
            known = ", ".join(_OPTION_TYPES)
            raise TypeError(f"progress has no option {key!r}; the options are {known}")
        if key == "file" and not callable(getattr(value, "write", None)):
            raise TypeError(f"progress option 'file' must be a writable text file, got {value!r}")
        if not isinstance(value, expected) or (key != "leave" and isinstance(value, bool)):
            raise TypeError(f"progress option {key!r} has the wrong type: {value!r}")
    interval = progress.get("mininterval")
    if interval is not None and not 0 <= interval < float("inf"):
        raise ValueError(f"progress option 'mininterval' must be >= 0 and finite, got {interval}")
    return progress  # type: ignore[return-value]


def _draws_a_bar(file: IO[str] | None) -> bool:
    """Whether someone watches the output: a terminal, or (by default) a Jupyter cell."""
    target = sys.stderr if file is None else file
    isatty = getattr(target, "isatty", None)
    try:
        if isatty is not None and isatty():
            return True
    except ValueError:  # a closed file
        return False
    return file is None and "ipykernel" in sys.modules


def total_of(items: object) -> int | None:
    """The number of items if it can be known without consuming them."""
    if hasattr(items, "__aiter__"):
        return None
    # length_hint already answers the default when __length_hint__ raises TypeError.
    hint = operator.length_hint(items, -1)
    return None if hint < 0 else hint


class Bar:
    """A tqdm bar that counts outcomes, with the failures and retries seen so far."""

    def __init__(self, total: int | None, options: ProgressOptions) -> None:
        try:
            from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise ImportError(
                "progress=True draws its bar with tqdm, which is not installed; "
                "install it with: pip install 'anyfan[progress]'"
            ) from None
        settings: dict[str, Any] = {"desc": "anyfan", **options}
        self._bar: Any = tqdm(total=total, unit="call", dynamic_ncols=True, **settings)
        self.failed = 0
        self.retried = 0
        self._seen = 0

    def __call__(self, outcome: Outcome[Any, Any]) -> None:
        self._seen += 1
        if outcome.error is not None:
            self.failed += 1
        self.retried += outcome.attempts - 1
        if outcome.error is not None or self._seen % _POSTFIX_EVERY == 0:
            self._bar.set_postfix(failed=self.failed, retried=self.retried, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        """Draw the final state and release the bar."""
        self._bar.set_postfix(failed=self.failed, retried=self.retried, refresh=False)
        self._bar.close()


class Lines:
    """Plain progress lines, at most one per interval, and a last one on close.

    For output no one watches live: each line stands alone in a log.
    """

    def __init__(
        self,
        total: int | None,
        options: ProgressOptions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._total = total
        self._desc = options.get("desc", "anyfan")
        self._file = options.get("file")
        self._interval = float(options.get("mininterval", LINE_INTERVAL))
        self._clock = clock
        self._last = clock()
        self.done = 0
        self.failed = 0
        self.retried = 0

    def __call__(self, outcome: Outcome[Any, Any]) -> None:
        self.done += 1
        if outcome.error is not None:
            self.failed += 1
        self.retried += outcome.attempts - 1
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            self._write()

    def close(self) -> None:
        """Write the final totals."""
        self._write()

    def _write(self) -> None:
        if self._total is None:
            head = f"{self.done:,} calls"
        else:
            percent = 100 * self.done / self._total if self._total else 100.0
            head = f"{self.done:,}/{self._total:,} calls ({percent:.0f}%)"
        file = sys.stderr if self._file is None else self._file
        print(
            f"{self._desc}: {head}, {self.failed:,} failed, {self.retried:,} retried",
            file=file,
            flush=True,
        )


def make_observer(
    items: object, progress: Progress, on_outcome: Observer | None
) -> tuple[Observer | None, Callable[[], None]]:
    """Return the observer the engine calls per outcome (or None) and a closer.

    ``progress`` may be a string, which then labels the bar, or `ProgressOptions`.
    """
    if on_outcome is not None and not callable(on_outcome):
        raise TypeError(f"on_outcome must be a function or None, got {on_outcome!r}")
    options = check_progress(progress)
    if options is None:
        return on_outcome, _nothing
    total = total_of(items)
    bar = _draws_a_bar(options.get("file"))
    report: Bar | Lines = Bar(total, options) if bar else Lines(total, options)
    if on_outcome is None:
        return report, report.close

    def both(outcome: Outcome[Any, Any]) -> None:
        report(outcome)
        on_outcome(outcome)

    return both, report.close


def _nothing() -> None:
    pass
