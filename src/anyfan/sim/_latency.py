"""When each token of a reply is due (sans-I/O).

Due times are offsets from the request's arrival, each computed on its own
from the model rather than as a sum of gaps, so a late wake-up never delays
the tokens after it: the server sleeps until absolute deadlines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._config import Latency


class Uniform(Protocol):
    """A source of uniform floats in [0, 1), such as `random.Random`."""

    def random(self) -> float:
        """Return the next float."""
        ...


def _spread(jitter: float, rng: Uniform) -> float:
    """Return a factor in [-jitter, jitter)."""
    return jitter * (2.0 * rng.random() - 1.0) if jitter else 0.0


def first_token_delay(latency: Latency, prompt_tokens: int, rng: Uniform) -> float:
    """Return the seconds from arrival to the first token."""
    base = (latency.ttft_ms + latency.per_prompt_token_ms * prompt_tokens) / 1000.0
    return base * (1.0 + _spread(latency.jitter, rng))


def token_offsets(latency: Latency, prompt_tokens: int, count: int, rng: Uniform) -> list[float]:
    """Return the seconds from arrival at which each of ``count`` tokens is due, in order.

    Token ``i`` is due ``first + itl * (i + u_i * jitter / 2)`` with ``u_i`` in
    [-1, 1): neighbours' windows do not overlap, so the offsets never decrease.
    """
    if count < 1:
        return []
    first = first_token_delay(latency, prompt_tokens, rng)
    gap = latency.itl_ms / 1000.0
    if not gap:
        return [first] * count
    half = latency.jitter / 2.0
    return [first] + [first + gap * (i + _spread(half, rng)) for i in range(1, count)]


def reply_delay(latency: Latency, prompt_tokens: int, count: int, rng: Uniform) -> float:
    """Return the seconds from arrival to the last of ``count`` tokens (a whole reply)."""
    first = first_token_delay(latency, prompt_tokens, rng)
    gap = latency.itl_ms / 1000.0
    if count < 2 or not gap:
        return first
    return first + gap * (count - 1 + _spread(latency.jitter / 2.0, rng))
