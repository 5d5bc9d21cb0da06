"""Go-style duration strings, the format of OpenAI's ``x-ratelimit-reset-*`` headers (sans-I/O)."""

from __future__ import annotations

from typing import Final

_NS_PER_US: Final = 1_000
_NS_PER_MS: Final = 1_000_000
_NS_PER_S: Final = 1_000_000_000
_NS_PER_MIN: Final = 60 * _NS_PER_S
_NS_PER_H: Final = 60 * _NS_PER_MIN


def _decimal(value: int, unit: int, digits: int) -> str:
    whole, fraction = divmod(value, unit)
    if not fraction:
        return str(whole)
    return f"{whole}.{fraction:0{digits}d}".rstrip("0")


def format_ns(ns: int) -> str:
    """Format a duration in nanoseconds the way Go's ``time.Duration.String`` does.

    Examples: ``0s``, ``20ms``, ``1.5µs``, ``1s``, ``51.189s``, ``6m0s``, ``1h0m0s``.
    """
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < _NS_PER_US:
        return f"{sign}{ns}ns"
    if ns < _NS_PER_MS:
        return f"{sign}{_decimal(ns, _NS_PER_US, 3)}µs"
    if ns < _NS_PER_S:
        return f"{sign}{_decimal(ns, _NS_PER_MS, 6)}ms"
    hours, rest = divmod(ns, _NS_PER_H)
    minutes, rest = divmod(rest, _NS_PER_MIN)
    seconds = _decimal(rest, _NS_PER_S, 9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return sign + seconds


def format_ms(milliseconds: int) -> str:
    """Format a whole number of milliseconds as a Go duration (``1500`` -> ``1.5s``)."""
    return format_ns(milliseconds * _NS_PER_MS)


def ceil_ms(seconds: float) -> int:
    """Round seconds up to whole milliseconds, never below 0.

    The provider reports waits in milliseconds at best; rounding up keeps a
    client that waits exactly that long from arriving a fraction too early.
    """
    if seconds <= 0:
        return 0
    # Subtract a hair so that float noise (0.1 s = 100.00000000000001 ms) does not add a ms.
    return max(1, -int(-(seconds * 1000 - 1e-6) // 1))
