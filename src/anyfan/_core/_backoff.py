"""How long to wait before retrying: exponential backoff with jitter, or the server's word.

Pure: randomness comes in as a function, so tests can fix it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

#: Doublings past this cannot matter: the ceiling is at its cap (or overflows to inf) by then.
_MAX_DOUBLINGS = 1023


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full (or partial) jitter.

    The n-th retry (n = 1, 2, ...) waits up to ``min(cap, base * 2**(n-1))``
    seconds; ``jitter`` is the share of that ceiling that is randomised. With
    ``jitter=1`` ("full jitter") the wait is uniform in ``(0, ceiling]``, which
    spreads retries of calls that failed together; with ``jitter=0`` it is
    exactly the ceiling.

    Attributes:
        base: Ceiling of the first retry's wait, in seconds.
        cap: Largest ceiling, in seconds.
        jitter: Randomised share of the ceiling, from 0 to 1.
    """

    base: float
    cap: float
    jitter: float = 1.0

    def ceiling(self, retry: int) -> float:
        """Return the longest wait before retry number ``retry`` (counting from 1)."""
        doublings = min(max(retry - 1, 0), _MAX_DOUBLINGS)
        return min(self.cap, self.base * 2.0**doublings)

    def delay(self, retry: int, rand: Callable[[], float]) -> float:
        """Return the wait before retry number ``retry``; ``rand()`` gives a float in [0, 1)."""
        return self.ceiling(retry) * (1.0 - self.jitter * rand())


def directed_delay(hint: float | None, cap: float) -> float | None:
    """Make a server-directed delay safe: ``None`` if absent or NaN, else clamped to [0, cap]."""
    if hint is None or math.isnan(hint):
        return None
    return min(max(hint, 0.0), cap)


def within_deadline(elapsed: float, delay: float, deadline: float | None) -> bool:
    """Whether a retry after ``delay`` still starts before a ``deadline`` (from the first try)."""
    return deadline is None or elapsed + delay < deadline
