"""Reading a provider's rate-limit and retry headers (sans-I/O)."""

from __future__ import annotations

import email.utils
import math
import re
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


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go-style duration such as ``"6m0s"``, ``"20ms"`` or ``"51.189s"``.

    Returns ``None`` for anything that is not one (a bare number counts as seconds,
    which some OpenAI-compatible servers send).
    """
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return value if math.isfinite(value) and value >= 0 else None
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


def header(headers: Mapping[str, str] | Any, name: str) -> str | None:
    """A header's value from httpx, aiohttp or plain-dict headers (any case)."""
    value = headers.get(name)
    if value is None and isinstance(headers, dict):
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return str(candidate)
    return None if value is None else str(value)


def retry_after(
    headers: Mapping[str, str] | Any, *, now: Callable[[], float] | None = None
) -> float | None:
    """The server-directed delay in seconds: ``retry-after-ms``, then ``retry-after``.

    ``retry-after`` may be seconds or an HTTP date (then ``now`` gives the wall
    clock, `time.time` by default). Unparseable or negative values give ``None``.
    """
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        raw = header(headers, name)
        if raw is None:
            continue
        try:
            seconds = float(raw) * scale
        except ValueError:
            continue
        if math.isnan(seconds) or seconds < 0:
            return None
        return seconds
    raw = header(headers, "retry-after")
    if raw is None:
        return None
    parsed = email.utils.parsedate_tz(raw)
    if parsed is None:
        return None
    if now is None:
        import time

        now = time.time
    return max(0.0, email.utils.mktime_tz(parsed) - now())


@dataclass(frozen=True, slots=True)
class RateLimitHeaders:
    """The ``x-ratelimit-*`` headers of one response; fields are ``None`` when absent."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float | None = None

    @classmethod
    def parse(cls, headers: Mapping[str, str] | Any) -> RateLimitHeaders:
        """Read the headers, ignoring any that are missing or malformed."""

        def integer(name: str) -> int | None:
            raw = header(headers, name)
            if raw is None:
                return None
            try:
                return int(raw)
            except ValueError:
                return None

        def duration(name: str) -> float | None:
            raw = header(headers, name)
            return None if raw is None else parse_go_duration(raw)

        return cls(
            limit_requests=integer("x-ratelimit-limit-requests"),
            remaining_requests=integer("x-ratelimit-remaining-requests"),
            reset_requests=duration("x-ratelimit-reset-requests"),
            limit_tokens=integer("x-ratelimit-limit-tokens"),
            remaining_tokens=integer("x-ratelimit-remaining-tokens"),
            reset_tokens=duration("x-ratelimit-reset-tokens"),
        )
