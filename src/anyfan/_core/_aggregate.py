"""Turning a run's per-item results into what ``map`` returns or raises (sans-I/O)."""

from __future__ import annotations

from typing import Any, Final

from ._errors import FanError
from ._options import ErrorPolicy

#: Placeholder for an item that was pulled but has no result yet.
PENDING: Final[Any] = type("_Pending", (), {"__repr__": lambda self: "<pending>"})()


def _describe(count: int, total: int | None) -> str:
    if total is None:
        return f"{count} {'call' if count == 1 else 'calls'} failed before the fan-out stopped"
    return f"{count} of {total} {'call' if total == 1 else 'calls'} failed"


class Collector:
    """Results of one run, held by index, and the error policy that judges them.

    The engine calls ``reserve`` as it pulls each item (so indices count up in
    input order), then ``succeed`` or ``fail`` as calls finish, in any order.
    """

    __slots__ = ("failures", "policy", "results")

    def __init__(self, policy: ErrorPolicy) -> None:
        self.policy = policy
        self.results: list[Any] = []
        self.failures: list[tuple[int, Exception]] = []

    def reserve(self) -> int:
        """Make room for the next item and return its index."""
        results = self.results
        results.append(PENDING)
        return len(results) - 1

    def succeed(self, index: int, value: Any) -> None:
        """Record a value."""
        self.results[index] = value

    def fail(self, index: int, error: Exception) -> bool:
        """Record a failure; return whether the run must stop."""
        self.results[index] = error
        self.failures.append((index, error))
        return self.policy == "raise"

    def completed(self) -> dict[int, Any]:
        """Everything that finished so far, by index."""
        return {i: r for i, r in enumerate(self.results) if r is not PENDING}

    def outcome(self) -> list[Any]:
        """Return the results the policy allows, or raise `FanError`."""
        if self.policy == "return" or not self.failures:
            return self.results
        failures = sorted(self.failures, key=lambda pair: pair[0])
        if self.policy == "raise":
            message = _describe(len(failures), None)
            results = None
        else:
            message = _describe(len(failures), len(self.results))
            results = self.results
        for index, error in failures:
            error.add_note(f"anyfan: raised by the call for item #{index}")
        raise FanError(
            message,
            [error for _, error in failures],
            indices=[index for index, _ in failures],
            results=results,
        )
