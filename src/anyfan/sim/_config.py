"""What the simulator can be told: rate limits, the latency model and fault probabilities.

Each is a frozen dataclass checked when it is built, so a bad setting fails at
once with a message naming it, never later inside the server thread.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any, Final

from .._core import check_number, check_optional_int


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Rate limits per API key, as the provider sets them: per minute, enforced per second.

    Each API key (the ``Authorization: Bearer`` token) gets its own budget.

    Args:
        rpm: Requests per minute, or ``None`` for no request limit.
        tpm: Tokens per minute, or ``None`` for no token limit. A request is
            charged its prompt tokens plus its ``max_tokens`` when it arrives.
    """

    rpm: int | None = None
    tpm: int | None = None

    def __post_init__(self) -> None:
        check_optional_int(self.rpm, "rpm", minimum=1)
        check_optional_int(self.tpm, "tpm", minimum=1)


@dataclass(frozen=True, slots=True)
class Latency:
    """How long a response takes.

    The first token is due ``ttft_ms + per_prompt_token_ms * prompt_tokens``
    after the request arrives, token ``i`` is due ``i * itl_ms`` after that, and
    every due time is an absolute deadline, so delays never add up to drift.

    Args:
        ttft_ms: Base time to the first token, in milliseconds.
        per_prompt_token_ms: Extra time to the first token per prompt token.
        itl_ms: Inter-token latency: time between consecutive tokens.
        jitter: Seeded random spread, from 0 to 1: the time to the first token
            is scaled by a factor within ``1 ± jitter`` and each token's due
            time moves by up to ``± jitter / 2`` of an inter-token gap.
    """

    ttft_ms: float = 0.0
    per_prompt_token_ms: float = 0.0
    itl_ms: float = 0.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        check_number(self.ttft_ms, "ttft_ms", positive=False)
        check_number(self.per_prompt_token_ms, "per_prompt_token_ms", positive=False)
        check_number(self.itl_ms, "itl_ms", positive=False)
        check_number(self.jitter, "jitter", positive=False, at_most=1.0)

    @property
    def is_zero(self) -> bool:
        """Tell whether every response is due at once (the fast path: no timers)."""
        return not (self.ttft_ms or self.per_prompt_token_ms or self.itl_ms)


class Fault(enum.Enum):
    """A misbehaviour the simulator can inject; the value is its ``x-sim-fault`` header name."""

    #: HTTP 500 with OpenAI's ``server_error`` body.
    SERVER_ERROR = "500"
    #: HTTP 503, the provider being overloaded.
    UNAVAILABLE = "503"
    #: The connection is reset (TCP RST) before any byte of a response.
    RESET = "reset"
    #: No response at all, until the client gives up or the server stops.
    HANG = "hang"
    #: The response starts only after `Faults.slow_first_byte_ms`, then runs normally.
    SLOW_FIRST_BYTE = "slow"
    #: The body (a stream or a JSON document) stops half-way and the connection is reset.
    STREAM_CUT = "cut"
    #: HTTP 429 with code ``insufficient_quota``: a billing error that never heals.
    INSUFFICIENT_QUOTA = "quota"


#: `Faults` field holding each fault's probability.
FAULT_FIELDS: Final = {
    Fault.SERVER_ERROR: "server_error",
    Fault.UNAVAILABLE: "unavailable",
    Fault.RESET: "reset",
    Fault.HANG: "hang",
    Fault.SLOW_FIRST_BYTE: "slow_first_byte",
    Fault.STREAM_CUT: "stream_cut",
    Fault.INSUFFICIENT_QUOTA: "insufficient_quota",
}


@dataclass(frozen=True, slots=True)
class Faults:
    """Probability of each injected fault, per API request (they exclude one another).

    Args:
        server_error: Chance of an HTTP 500.
        unavailable: Chance of an HTTP 503.
        reset: Chance that the connection is reset instead of answered.
        hang: Chance that the request is never answered.
        slow_first_byte: Chance that the response starts late by ``slow_first_byte_ms``.
        stream_cut: Chance that the body is cut off half-way.
        insufficient_quota: Chance of the ``insufficient_quota`` 429.
        slow_first_byte_ms: How late a slow first byte is.
    """

    server_error: float = 0.0
    unavailable: float = 0.0
    reset: float = 0.0
    hang: float = 0.0
    slow_first_byte: float = 0.0
    stream_cut: float = 0.0
    insufficient_quota: float = 0.0
    slow_first_byte_ms: float = 2000.0
    #: (cumulative probability, fault) pairs: one uniform draw picks a fault.
    table: tuple[tuple[float, Fault], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cumulative = 0.0
        table = []
        for fault, name in FAULT_FIELDS.items():
            probability = getattr(self, name)
            check_number(probability, name, positive=False, at_most=1.0)
            if probability:
                cumulative += probability
                table.append((cumulative, fault))
        if cumulative > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities must add up to at most 1, got {cumulative:g}")
        check_number(self.slow_first_byte_ms, "slow_first_byte_ms", positive=False)
        object.__setattr__(self, "table", tuple(table))

    def probability(self, fault: Fault) -> float:
        """Return the configured probability of ``fault``."""
        return float(getattr(self, FAULT_FIELDS[fault]))


def as_dict(settings: ServerLimits | Latency | Faults) -> dict[str, Any]:
    """Return the settings as plain JSON-ready values (what ``GET /sim/config`` shows)."""
    return {f.name: getattr(settings, f.name) for f in fields(settings) if f.init}
