"""Exceptions anyfan raises."""

from __future__ import annotations

import functools
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from types import CodeType
from typing import Any, Self, TypeVar

E = TypeVar("E", bound=BaseException)


def shed_frames(error: E, codes: Container[CodeType]) -> E:
    """Drop the frames running ``codes`` from the head of ``error``'s traceback; return it.

    An error the engine keeps for the caller (a map's result, an outcome's
    ``error``) carries the frames it passed through, each with its locals: the
    engine's frames would keep the run, and every result it holds, reachable
    from that error, which the results reach in turn. Such a cycle is freed
    only by the cyclic garbage collector, long after the caller dropped the
    results. The engine's frames tell a reader of the traceback nothing
    either: it then starts at the caller's own function.
    """
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code in codes:
        tb = tb.tb_next
    error.__traceback__ = tb
    return error


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            yield from _leaves(sub)
    else:
        yield exc


def _first_leaf(exc: BaseException) -> BaseException | None:
    return next(_leaves(exc), None)


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
        # The leaf -> index map is built once per group, so ``except*`` over
        # n failures costs O(n), not O(n**2).
        by_leaf = self._index_by_leaf()
        indices = []
        for exc in excs:
            leaf = _first_leaf(exc)
            index = None if leaf is None else by_leaf.get(id(leaf))
            if index is not None:
                indices.append(index)
        return FanError(self.message, excs, indices=indices, results=self.results)

    def _index_by_leaf(self) -> dict[int, int]:
        cached: dict[int, int] | None = self.__dict__.get("_by_leaf")
        if cached is None:
            cached = {}
            for original, index in zip(self.exceptions, self.indices, strict=True):
                for leaf in _leaves(original):
                    cached.setdefault(id(leaf), index)
            self.__dict__["_by_leaf"] = cached
        return cached

    def __reduce__(self) -> tuple[Any, ...]:
        # The default rebuilds with ``(message, exceptions)`` only; carry the
        # keyword-only fields, and drop the id-keyed cache, which a copy can't use.
        state = {k: v for k, v in self.__dict__.items() if k not in _OWN_FIELDS}
        rebuild = functools.partial(type(self), indices=self.indices, results=self.results)
        return (rebuild, (self.message, list(self.exceptions)), state)


_OWN_FIELDS = frozenset({"indices", "results", "_by_leaf"})


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

    def __reduce__(self) -> tuple[Any, ...]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("deadline", "completed")}
        return (type(self), (self.deadline, self.completed), state)


class Misuse(RuntimeError):
    """A mistake in how anyfan is called, not a failure of one call.

    Raised inside a call (a blocking facade used from its own loop's thread,
    for instance), it stops the whole fan-out and arrives as itself, so
    ``except RuntimeError`` catches it rather than a `FanError` around it.
    """


class CostTooLarge(ValueError):
    """A call costs more than its rate limit could ever admit in one period.

    Such a call would never fit, and waiting for it would stall every call
    behind it (a ``max_tokens`` of 10**12 under a tokens-per-minute limit).
    It fails at once, before it starts, and is charged nothing; like any
    failure of one item, the error policy decides what happens next.

    Attributes:
        cost: The call's estimated cost, in the rate's units.
        limit: The rate limit, as written (``"100000/60s"``).
        most: The most units one call may cost under it: the larger of the
            limit and the burst.
    """

    def __init__(self, cost: float, limit: str, most: float) -> None:
        super().__init__(
            f"a call costing {cost:g} units can never start under the rate limit {limit}: "
            f"it admits at most {most:g} units in one period; split the call or raise the limit"
        )
        self.cost = cost
        self.limit = limit
        self.most = most

    def __reduce__(self) -> tuple[Any, ...]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("cost", "limit", "most")}
        return (type(self), (self.cost, self.limit, self.most), state)


class StoreUnavailable(ConnectionError):
    """The shared store behind a `Rate` (Redis, say) cannot be reached.

    Raised at once when the store is unreachable the first time it is used,
    and after a bounded spell of reconnecting when it is lost mid-run. A
    `ConnectionError`, so the default `Retry` policy retries the call; the
    store's address is named, its password never.
    """
