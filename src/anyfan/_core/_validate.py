"""Checking numbers where they are given, with one wording for every error.

Every option that takes a number, in the engine and in the packages above it,
is checked here, so a mistake fails when the object is built with a message
that names the option and the value: ``TypeError`` for the wrong kind of
value, ``ValueError`` for a value out of range.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_number(
    value: object, name: str, *, positive: bool = True, at_most: float | None = None
) -> float:
    """Return ``value`` as a float if it is a finite number in range; else raise naming it.

    Args:
        value: What was given.
        name: The option's name, for the message.
        positive: Whether 0 is rejected (the default); otherwise any number from 0 up.
        at_most: The largest value allowed, if any.

    Raises:
        TypeError: If ``value`` is not an int or float (bools are not numbers).
        ValueError: If it is not finite or out of range.
    """
    if not _is_number(value):
        raise TypeError(f"{name} must be a number, got {value!r}")
    assert isinstance(value, int | float)
    if at_most is not None:
        lowest_ok = value > 0 if positive else value >= 0
        if not (lowest_ok and value <= at_most):  # NaN fails both
            lowest = "above 0" if positive else "from 0"
            raise ValueError(f"{name} must be a number {lowest} to {at_most:g}, got {value!r}")
    elif not math.isfinite(value) or value < 0 or (positive and value == 0):
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be a {kind}, finite number, got {value!r}")
    return float(value)


def check_optional_number(value: object, name: str, *, positive: bool = True) -> float | None:
    """Like `check_number`, but ``None`` is allowed (and returned) too."""
    if value is None:
        return None
    if not _is_number(value):
        raise TypeError(f"{name} must be a number or None, got {value!r}")
    return check_number(value, name, positive=positive)


def check_int(value: object, name: str, *, minimum: int = 0) -> int:
    """Return ``value`` if it is an int of at least ``minimum``; else raise naming it.

    Raises:
        TypeError: If ``value`` is not an int (bools are not ints here).
        ValueError: If it is below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return value


def check_optional_int(value: object, name: str, *, minimum: int = 0) -> int | None:
    """Like `check_int`, but ``None`` is allowed (and returned) too."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, got {value!r}")
    return check_int(value, name, minimum=minimum)


def check_ratio(numerator: float, denominator: float, name: str) -> float:
    """Return ``numerator / denominator`` if it and its inverse are finite and positive.

    Two valid numbers can still make a rate no float can hold (``1e300 / 1e-300``).

    Raises:
        ValueError: If the quotient or its inverse overflows or underflows.
    """
    quotient = numerator / denominator
    if not (0 < quotient < math.inf and 0 < denominator / numerator < math.inf):
        raise ValueError(
            f"{name} must be a positive, finite number, got {numerator!r} / {denominator!r}"
        )
    return quotient


def check_function(value: F | None, name: str) -> F | None:
    """Return ``value`` if it is callable or ``None``; else raise naming it.

    Raises:
        TypeError: If ``value`` is neither.
    """
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be a function or None, got {value!r}")
    return value
