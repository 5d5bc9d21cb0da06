"""Exceptions anyfan raises."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Self


def _leaf_ids(exc: BaseException) -> set[int]:
    if isinstance(exc, BaseExceptionGroup):
        ids: set[int] = set()
        for sub in exc.exceptions:
            ids |= _leaf_ids(sub)
        return ids
    return {id(exc)}


class FanError(ExceptionGroup[Exception]):
    """One or more calls of a fan-out failed.

    A subclass of `ExceptionGroup`, so ``except*`` picks out failures by type.
    ``exceptions`` are the original exceptions in input order, and ``indices``
    gives the input position of each. With ``errors="collect"``, ``results``
    holds every item's value in input order, a failed item's exception in its
    place; with ``errors="raise"`` it is ``None`` because the run was cut short.
    """

    indices: tuple[int, ...]
    results: list[Any] | None

    def __new__(
        cls,
        message: str,
        exceptions: Sequence[Exception],
        *,
        indices: Iterable[int],
        results: list[Any] | None = None,
    ) -> Self:
        self = super().__new__(cls, message, exceptions)
        self.indices = tuple(indices)
        self.results = results
        if len(self.indices) != len(self.exceptions):
            raise ValueError("FanError needs exactly one index per exception")
        return self

    def __init__(
        self,
        message: str,
        exceptions: Sequence[Exception],
        *,
        indices: Iterable[int],
        results: list[Any] | None = None,
    ) -> None:
        super().__init__(message, exceptions)

    @property
    def failures(self) -> list[tuple[int, Exception]]:
        """``(index, exception)`` pairs, in input order."""
        return list(zip(self.indices, self.exceptions, strict=True))

    def successes(self) -> dict[int, Any]:
        """Values of the calls that succeeded, by index (``collect`` only)."""
        if self.results is None:
            return {}
        failed = set(self.indices)
        return {i: v for i, v in enumerate(self.results) if i not in failed}

    def derive(self, excs: Sequence[Exception]) -> FanError:  # type: ignore[override]
        # ``except*`` and ``split`` rebuild groups through here; keep each
        # exception's index, matching nested groups by the leaves they hold.
        indices = []
        pairs = list(zip(self.exceptions, self.indices, strict=True))
        for exc in excs:
            leaves = _leaf_ids(exc)
            for original, index in pairs:
                if original is exc or leaves <= _leaf_ids(original):
                    indices.append(index)
                    break
        return FanError(self.message, excs, indices=indices, results=self.results)


class DeadlineExceeded(TimeoutError):
    """The whole fan-out ran past its ``deadline``; unfinished work was cancelled.

    ``completed`` maps the index of every item that finished before the
    deadline to its value (or, if it failed, its exception).
    """

    def __init__(self, deadline: float, completed: Mapping[int, Any]) -> None:
        super().__init__(
            f"fan-out deadline of {deadline:g}s exceeded with {len(completed)} item(s) finished"
        )
        self.deadline = deadline
        self.completed = dict(completed)
