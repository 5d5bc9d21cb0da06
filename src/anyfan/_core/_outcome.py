"""The record of one item's fate in a fan-out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T, R]):
    """What became of one item: its value or its error, and how it got there.

    Attributes:
        index: The item's position in the input, counting from 0.
        item: The item itself.
        value: The call's return value, or ``None`` if it failed.
        error: The exception the call finally raised, or ``None`` on success.
        attempts: How many times the call was started (more than 1 after retries).
        elapsed: Seconds from the first start to the final result, on the event
            loop's clock (so test clocks give exact values).
    """

    index: int
    item: T
    value: R | None = None
    error: Exception | None = None
    attempts: int = 1
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the call succeeded."""
        return self.error is None

    def unwrap(self) -> R:
        """Return the value, or raise the error if the call failed."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]
