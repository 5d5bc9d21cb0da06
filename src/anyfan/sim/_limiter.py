"""Per-minute rate limits enforced in 1-second slices, the way the provider does (sans-I/O).

Each limit (RPM or TPM) of each API key is enforced twice:

- per slice: each 1-second slice of the simulator's clock admits at most
  ``ceil(limit / 60)``, so 6,000 RPM is 100 per second and a burst that is
  legal per minute still gets 429s; a request larger than that is admitted
  only into an empty slice;
- per minute: a bucket of ``limit`` refills at ``limit / 60`` per second and
  must hold the request's cost. Its level is what the ``x-ratelimit-remaining``
  headers report, and the time it takes to refill is ``x-ratelimit-reset``.

Time is passed in (seconds since the simulator's epoch), so this is plain
arithmetic, tested without a clock.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final, Literal

from ._durations import ceil_ms, format_ms

if TYPE_CHECKING:
    from ._config import Limits

Kind = Literal["requests", "tokens"]
Headers = list[tuple[bytes, bytes]]

_LIMIT_NAMES: Final = {
    "requests": (
        b"x-ratelimit-limit-requests",
        b"x-ratelimit-remaining-requests",
        b"x-ratelimit-reset-requests",
    ),
    "tokens": (
        b"x-ratelimit-limit-tokens",
        b"x-ratelimit-remaining-tokens",
        b"x-ratelimit-reset-tokens",
    ),
}


class Window:
    """One per-minute limit of one API key."""

    __slots__ = (
        "_header_names",
        "_limit_value",
        "level",
        "limit",
        "rate",
        "slice_cap",
        "slice_index",
        "slice_used",
        "updated",
    )

    def __init__(self, kind: Kind, limit: int, now: float) -> None:
        self.limit = limit
        self.rate = limit / 60.0
        self.slice_cap = -(-limit // 60)
        self.level = float(limit)
        self.updated = now
        self.slice_index = int(now)
        self.slice_used = 0
        self._header_names = _LIMIT_NAMES[kind]
        self._limit_value = b"%d" % limit

    def wait(self, cost: int, now: float) -> float:
        """Return the seconds until ``cost`` could be admitted: 0 for now, ``inf`` for never."""
        if now > self.updated:
            self.level = min(float(self.limit), self.level + (now - self.updated) * self.rate)
            self.updated = now
        index = int(now)  # now >= 0: the epoch is the simulator's start
        if index != self.slice_index:
            self.slice_index = index
            self.slice_used = 0
        if cost > self.limit:
            return math.inf
        wait = 0.0
        if self.slice_used and self.slice_used + cost > self.slice_cap:
            wait = index + 1 - now
        if self.level < cost:
            wait = max(wait, (cost - self.level) / self.rate)
        return wait

    def charge(self, cost: int) -> None:
        """Take ``cost`` from the slice and the minute bucket (after `wait` said 0)."""
        self.level -= cost
        self.slice_used += cost

    @property
    def remaining(self) -> int:
        """Return what is left of the minute's budget, in whole units."""
        return max(0, int(self.level + 1e-9))

    def headers(self) -> Headers:
        """Return the ``x-ratelimit-{limit,remaining,reset}-*`` headers for this limit now."""
        limit_name, remaining_name, reset_name = self._header_names
        ms = ceil_ms((self.limit - self.level) / self.rate)
        reset = b"%dms" % ms if 0 < ms < 1000 else format_ms(ms).encode()
        return [
            (limit_name, self._limit_value),
            (remaining_name, b"%d" % self.remaining),
            (reset_name, reset),
        ]


class Decision:
    """The limiter's answer for one request."""

    __slots__ = ("admitted", "cost", "headers", "kind", "limit", "used", "wait")

    def __init__(
        self,
        headers: Headers,
        *,
        admitted: bool = True,
        kind: Kind | None = None,
        wait: float = 0.0,
        limit: int = 0,
        used: int = 0,
        cost: int = 0,
    ) -> None:
        #: The ``x-ratelimit-*`` headers to send with the response.
        self.headers = headers
        self.admitted = admitted
        #: Which limit refused the request.
        self.kind = kind
        #: Seconds until the request could pass (``inf``: it is larger than the limit).
        self.wait = wait
        self.limit = limit
        self.used = used
        self.cost = cost


_ADMITTED_FREELY: Final = Decision([])


class RateLimiter:
    """The RPM and TPM limits of every API key seen."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._windows: dict[str, tuple[Window | None, Window | None]] = {}

    def admit(self, key: str, tokens: int, now: float) -> Decision:
        """Admit and charge one request of ``tokens`` for ``key`` at ``now``, or refuse it."""
        windows = self._windows.get(key)
        if windows is None:
            rpm, tpm = self.limits.rpm, self.limits.tpm
            if rpm is None and tpm is None:
                return _ADMITTED_FREELY
            windows = (
                None if rpm is None else Window("requests", rpm, now),
                None if tpm is None else Window("tokens", tpm, now),
            )
            self._windows[key] = windows
        requests, token_window = windows
        request_wait = 0.0 if requests is None else requests.wait(1, now)
        token_wait = 0.0 if token_window is None else token_window.wait(tokens, now)
        if request_wait or token_wait:
            # Name the limit that holds the request back longest: its wait is the one to obey.
            window, kind, cost = (
                (requests, "requests", 1)
                if request_wait >= token_wait
                else (token_window, "tokens", tokens)
            )
            assert window is not None
            return Decision(
                self._headers(windows),
                admitted=False,
                kind=kind,  # type: ignore[arg-type]
                wait=max(request_wait, token_wait),
                limit=window.limit,
                used=window.limit - window.remaining,
                cost=cost,
            )
        if requests is not None:
            requests.charge(1)
        if token_window is not None:
            token_window.charge(tokens)
        return Decision(self._headers(windows))

    @staticmethod
    def _headers(windows: tuple[Window | None, Window | None]) -> Headers:
        requests, tokens = windows
        headers = [] if requests is None else requests.headers()
        if tokens is not None:
            headers += tokens.headers()
        return headers
