"""Checking options where they are given, so mistakes surface when objects are built."""

from __future__ import annotations

import math
from typing import Final, Literal, TypeAlias

ErrorPolicy: TypeAlias = Literal["raise", "collect", "return"]
ERROR_POLICIES: Final = ("raise", "collect", "return")

#: Calls in flight when nobody says otherwise. Finite so that a careless
#: ``map`` over a million items cannot open a million sockets; 32 keeps well
#: inside the connection pools of the common HTTP clients (100 by default).
DEFAULT_CONCURRENCY: Final = 32


def check_concurrency(value: object, *, name: str = "concurrency") -> int:
    """Return ``value`` if it is a positive int, else raise naming the problem."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value!r}")
    return value


def check_seconds(value: object, *, name: str) -> float | None:
    """Return ``value`` as a float if it is ``None`` or a positive finite number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds or None, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    return float(value)


def check_errors(value: object) -> ErrorPolicy:
    """Return ``value`` if it names an error policy."""
    if value not in ERROR_POLICIES:
        raise ValueError(
            f"errors must be one of {', '.join(map(repr, ERROR_POLICIES))}, got {value!r}"
        )
    return value  # type: ignore[return-value,unused-ignore]
