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

This limiter deliberately shares no code with anyfan's own (`anyfan.Rate`,
a GCRA): it is the independent oracle the client's limiter is tested
against. It counts as the provider counts, in fixed slices and a refilling
bucket, so a shared bug could not make both sides agree on a wrong answer.
Do not fold it into the core.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final, Literal

from ._durations import ceil_ms, format_ms

if TYPE_CHECKING:
    from ._config import ServerLimits

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


class KeyQuota:
    """One per-minute limit (RPM or TPM) of one API key: its slices and its bucket."""

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


class Admission:
    """The limiter's answer for one request: admitted, or refused and why."""

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


_ADMITTED_FREELY: Final = Admission([])


class RateLimiter:
    """The RPM and TPM limits of every API key seen.

    Kept apart from `anyfan.Rate` on purpose: see the module's docstring.
    """

    def __init__(self, limits: ServerLimits) -> None:
        self.limits = limits
        self._quotas: dict[str, tuple[KeyQuota | None, KeyQuota | None]] = {}

    def admit(self, key: str, tokens: int, now: float) -> Admission:
        """Admit and charge one request of ``tokens`` for ``key`` at ``now``, or refuse it."""
        quotas = self._quotas.get(key)
        if quotas is None:
            rpm, tpm = self.limits.rpm, self.limits.tpm
            if rpm is None and tpm is None:
                return _ADMITTED_FREELY
            quotas = (
                None if rpm is None else KeyQuota("requests", rpm, now),
                None if tpm is None else KeyQuota("tokens", tpm, now),
            )
            self._quotas[key] = quotas
        requests, token_quota = quotas
        request_wait = 0.0 if requests is None else requests.wait(1, now)
        token_wait = 0.0 if token_quota is None else token_quota.wait(tokens, now)
        if request_wait or token_wait:
            # Name the limit that holds the request back longest: its wait is the one to obey.
            quota, kind, cost = (
                (requests, "requests", 1)
                if request_wait >= token_wait
                else (token_quota, "tokens", tokens)
            )
            assert quota is not None
            return Admission(
                self._headers(quotas),
                admitted=False,
                kind=kind,  # type: ignore[arg-type]
                wait=max(request_wait, token_wait),
                limit=quota.limit,
                used=quota.limit - quota.remaining,
                cost=cost,
            )
        if requests is not None:
            requests.charge(1)
        if token_quota is not None:
            token_quota.charge(tokens)
        return Admission(self._headers(quotas))

    @staticmethod
    def _headers(quotas: tuple[KeyQuota | None, KeyQuota | None]) -> Headers:
        requests, tokens = quotas
        headers = [] if requests is None else requests.headers()
        if tokens is not None:
            headers += tokens.headers()
        return headers
