"""A retry budget: retries may be at most a fraction of recent calls.

Pure: every method takes ``now``. When a dependency is down every call fails;
without a budget each failure turns into several retries and the load on the
struggling service multiplies. With one, retries stay a small fraction of the
calls made, and the outage surfaces as errors instead.
"""

from __future__ import annotations

from ._validate import check_int, check_number
from ._window import SlidingSum


class RetryBudget:
    """Allows a retry while retries stay within ``ratio`` of recent first attempts.

    Over the last ``window`` seconds, a retry is allowed if, counting it,
    retries do not exceed ``ratio * calls + minimum``. The small ``minimum``
    lets a handful of early retries through before many calls have been made.

    Args:
        ratio: Retries allowed per first attempt (0.2: one retry per five calls).
        window: Seconds of history that count.
        minimum: Retries allowed per window regardless of the calls made.

    Raises:
        TypeError, ValueError: If an argument is invalid; the message names it.
    """

    __slots__ = ("_calls", "_retries", "minimum", "ratio")

    def __init__(self, ratio: float = 0.2, *, window: float = 10.0, minimum: int = 5) -> None:
        self.ratio = check_number(ratio, "ratio", positive=False)
        window = check_number(window, "window")
        self.minimum = check_int(minimum, "minimum")
        self._calls = SlidingSum(window)
        self._retries = SlidingSum(window)

    @property
    def window(self) -> float:
        """Seconds of history that count."""
        return self._calls.window

    def record_call(self, now: float) -> None:
        """Count a first attempt made at ``now`` (retries are counted by `spend`)."""
        self._calls.add(1, now)

    def allows(self, now: float) -> bool:
        """Whether one more retry at ``now`` would stay within the budget."""
        allowed = self.ratio * self._calls.total(now) + self.minimum
        return self._retries.total(now) + 1 <= allowed

    def spend(self, now: float) -> bool:
        """Take one retry from the budget if it allows one; return whether it did."""
        if not self.allows(now):
            return False
        self._retries.add(1, now)
        return True

    def __repr__(self) -> str:
        return f"RetryBudget({self.ratio!r}, window={self.window!r}, minimum={self.minimum!r})"
