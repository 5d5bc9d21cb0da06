"""The record of one item's fate in a fan-out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

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


class OutcomeDraft(Outcome[T, R]):
    """An `Outcome` being built: the same object, with plain slot stores.

    A frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``, since its own ``__setattr__`` refuses, and that
    custom ``__setattr__`` (with ``__delattr__``: they share one type slot)
    also keeps the interpreter from specialising attribute stores. A draft
    restores ``object``'s own, so its stores are plain slot writes, and skips
    ``__init__``; once filled, its class is switched to `Outcome`. Being a
    subclass that adds no slots, it needs no layout comparison for the switch,
    which then costs about 40% less than between two sibling classes. The
    result is an ordinary `Outcome` (frozen, hashable, picklable) for about a
    seventh of the cost of calling the class.
    Only `make_outcome` and the engine's stream worker build drafts, and never
    let one out before its class is switched.
    """

    __slots__ = ()
    # Resolved to the C functions themselves (no Python frames): see the docstring.
    __init__ = object.__init__
    __setattr__ = object.__setattr__
    __delattr__ = object.__delattr__


def make_outcome(
    index: int, item: T, value: R | None, error: Exception | None, attempts: int, elapsed: float
) -> Outcome[T, R]:
    """Build an `Outcome` from all its fields, faster than calling the class.

    For the engine's hot paths, which build one per item; users call `Outcome`.
    """
    draft: Any = OutcomeDraft()  # calling the class is cheaper than `object.__new__`
    draft.index = index
    draft.item = item
    draft.value = value
    draft.error = error
    draft.attempts = attempts
    draft.elapsed = elapsed
    draft.__class__ = Outcome
    return draft  # type: ignore[no-any-return]
