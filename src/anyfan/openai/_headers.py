"""Reading a provider's rate-limit and retry headers (sans-I/O)."""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

_GO_UNITS: Final = {
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ns": 1e-9,
}
_GO_PART: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|us|µs|μs|ns|m|s)")


_ONE_PART: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s)")


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go-style duration such as ``"6m0s"``, ``"20ms"`` or ``"51.189s"``.

    A bare number counts as seconds (some OpenAI-compatible servers send one).

    Returns:
        The duration in seconds, or ``None`` for anything that is not a
        non-negative duration.
    """
    text = text.strip()
    if not text:
        return None
    # The forms providers send on every response, read without the general loop.
    one = _ONE_PART.fullmatch(text)
    if one is not None:
        return float(one.group(1)) * (1e-3 if one.group(2) == "ms" else 1.0)
    if text[-1].isdigit():
        return _number(text)
    total = 0.0
    position = 0
    for match in _GO_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        position = match.end()
    if position != len(text):
        return None
    return total


def _number(text: str) -> float | None:
    """A finite, non-negative number, or ``None``."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def header(headers: Mapping[str, str] | Any, name: str) -> str | None:
    """A header's value from httpx, aiohttp or plain-dict headers, whatever its case.

    httpx's and aiohttp's header objects look names up case-insensitively
    themselves; a plain mapping is searched by lower-cased name.
    """
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    value = getter(name)
    # httpx's and aiohttp's headers are case-insensitive already; only a dict needs a search.
    if value is None and isinstance(headers, dict):
        lowered = name.lower()
        for key, candidate in headers.items():
            if isinstance(key, str) and key.lower() == lowered:
                value = candidate
                break
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def retry_after(
    headers: Mapping[str, str] | Any, *, now: Callable[[], float] = time.time
) -> float | None:
    """The server-directed delay in seconds: ``retry-after-ms``, then ``retry-after``.

    ``retry-after`` may be seconds or an HTTP date, which ``now`` (the wall
    clock) turns into seconds from now. A value that is malformed, negative
    or not finite counts as absent, so the next header is tried.
    """
    raw = header(headers, "retry-after-ms")
    if raw is not None:
        milliseconds = _number(raw)
        if milliseconds is not None:
            return milliseconds / 1000.0
    raw = header(headers, "retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return seconds
    parsed = email.utils.parsedate_tz(raw)
    if parsed is None:
        return None
    try:
        when = email.utils.mktime_tz(parsed)
    except (OverflowError, ValueError):
        return None
    return max(0.0, when - now())


@dataclass(frozen=True, slots=True)
class RateLimitHeaders:
    """The ``x-ratelimit-*`` headers of one response; fields are ``None`` when absent.

    Attributes:
        limit_requests: Requests allowed per minute.
        remaining_requests: Requests left now.
        reset_requests: Seconds until the request budget is full again.
        limit_tokens: Tokens allowed per minute.
        remaining_tokens: Tokens left now.
        reset_tokens: Seconds until the token budget is full again.
    """

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float | None = None

    @classmethod
    def parse(cls, headers: Mapping[str, str] | Any) -> RateLimitHeaders:
        """Read the headers, ignoring any that are missing or malformed."""

        def as_count(name: str) -> int | None:
            raw = header(headers, name)
            return None if raw is None else count(raw)

        def as_duration(name: str) -> float | None:
            raw = header(headers, name)
            return None if raw is None else parse_go_duration(raw)

        return cls(
            limit_requests=as_count("x-ratelimit-limit-requests"),
            remaining_requests=as_count("x-ratelimit-remaining-requests"),
            reset_requests=as_duration("x-ratelimit-reset-requests"),
            limit_tokens=as_count("x-ratelimit-limit-tokens"),
            remaining_tokens=as_count("x-ratelimit-remaining-tokens"),
            reset_tokens=as_duration("x-ratelimit-reset-tokens"),
        )


def count(text: str) -> int | None:
    """A count such as ``x-ratelimit-remaining-tokens`` holds, or ``None`` if it is none."""
    if text.isascii() and text.isdigit():
        return int(text)  # the usual form, read without a float on every response
    value = _number(text)
    return None if value is None else int(value)
