"""The ``on_retry`` and ``on_pause`` hooks, and the events they are handed. Pure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryEvent(Generic[T]):
    """A failed attempt that is about to be retried, as ``on_retry`` sees it.

    Attributes:
        item: The item whose call failed.
        attempt: The attempt that failed, counting from 1.
        error: What it raised.
        delay: Seconds the retry waits before it starts (backoff or the
            server's Retry-After); the rate limits may hold it longer.
        elapsed: Seconds since the item's first attempt started.
    """

    item: T
    attempt: int
    error: Exception
    delay: float
    elapsed: float


@dataclass(frozen=True, slots=True)
class PauseEvent(Generic[T]):
    """The shared pause was started or extended, as ``on_pause`` sees it.

    Attributes:
        item: The item whose failure asked for the pause.
        error: That failure (a 429 with Retry-After, say).
        seconds: How long the server asked every caller to wait.
        added: Seconds this pause added to the hold already in place.
    """

    item: T
    error: Exception
    seconds: float
    added: float


OnRetry: TypeAlias = Callable[[RetryEvent[Any]], object]
OnPause: TypeAlias = Callable[[PauseEvent[Any]], object]


def check_hook(value: object, name: str) -> Any:
    """Return ``value`` if it is callable or ``None``, else raise naming the option."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be a function or None, got {value!r}")
    return value


class Hooks:
    """The user's hooks of one Fan (either may be ``None``)."""

    __slots__ = ("on_pause", "on_retry")

    def __init__(self, on_retry: OnRetry | None = None, on_pause: OnPause | None = None) -> None:
        self.on_retry: OnRetry | None = check_hook(on_retry, "on_retry")
        self.on_pause: OnPause | None = check_hook(on_pause, "on_pause")
