"""What the simulator counts, for tests and benchmarks (sans-I/O)."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Counters:
    """A snapshot of the simulator's counters since it started or was last reset.

    Attributes:
        requests: API requests received (``/v1/...``; not the ``/sim/...`` controls).
        responses: Responses sent, by HTTP status (resets and hangs send none).
        rate_limited: 429s sent with code ``rate_limit_exceeded``.
        faults: Faults injected, by `Fault` value (``"500"``, ``"reset"``, ...).
        admitted: Requests that passed the rate limits.
        tokens_charged: Tokens charged against TPM (prompt + ``max_tokens``).
        prompt_tokens: Prompt tokens of the admitted requests.
        completion_tokens: Tokens written in replies.
        in_flight: API requests being handled now.
        peak_in_flight: Most API requests in flight at once.
        peak_admitted_per_second: Most requests admitted in any 1-second window.
        peak_tokens_per_second: Most tokens charged in any 1-second window.
        cpu_seconds: CPU time of the server's thread.
        elapsed_seconds: Wall time since the start or the last reset.
    """

    requests: int
    responses: dict[int, int]
    rate_limited: int
    faults: dict[str, int]
    admitted: int
    tokens_charged: int
    prompt_tokens: int
    completion_tokens: int
    in_flight: int
    peak_in_flight: int
    peak_admitted_per_second: int
    peak_tokens_per_second: int
    cpu_seconds: float
    elapsed_seconds: float

    @property
    def cpu_share(self) -> float:
        """Return the fraction of one core the server used over `elapsed_seconds`."""
        return self.cpu_seconds / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the counters as JSON-ready values (status codes become strings)."""
        data = asdict(self)
        data["responses"] = {str(status): n for status, n in sorted(self.responses.items())}
        data["cpu_share"] = self.cpu_share
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Counters:
        """Rebuild counters from `to_dict`'s output (what ``GET /sim/counters`` returns)."""
        values = {key: data[key] for key in cls.__dataclass_fields__}
        values["responses"] = {int(status): n for status, n in data["responses"].items()}
        return cls(**values)


class Tally:
    """The live counters, updated by the server on its own thread."""

    def __init__(self, now: float, cpu: float) -> None:
        self.in_flight = 0
        self.reset(now, cpu)

    def reset(self, now: float, cpu: float) -> None:
        """Start counting afresh at ``now``, with ``cpu`` seconds of CPU already spent."""
        self.requests = 0
        self.responses: dict[int, int] = {}
        self.rate_limited = 0
        self.faults: dict[str, int] = {}
        self.admitted = 0
        self.tokens_charged = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        # Requests in flight across a reset are still in flight after it.
        self.peak_in_flight = self.in_flight
        self.peak_admitted = 0
        self.peak_tokens = 0
        # (time, tokens) of the admissions in the last second, oldest first.
        self._recent: deque[tuple[float, int]] = deque()
        self._recent_tokens = 0
        self._started = now
        self._cpu_base = cpu

    def arrived(self) -> None:
        """Count an API request as received and in flight."""
        self.requests += 1
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight

    def admitted_at(self, now: float, tokens: int, prompt_tokens: int) -> None:
        """Count an admission at ``now`` that charged ``tokens``."""
        self.admitted += 1
        self.tokens_charged += tokens
        self.prompt_tokens += prompt_tokens
        recent = self._recent
        recent.append((now, tokens))
        self._recent_tokens += tokens
        horizon = now - 1.0
        while recent[0][0] <= horizon:
            self._recent_tokens -= recent.popleft()[1]
        if len(recent) > self.peak_admitted:
            self.peak_admitted = len(recent)
        if self._recent_tokens > self.peak_tokens:
            self.peak_tokens = self._recent_tokens

    def left(self) -> None:
        """Count an API request as no longer in flight."""
        self.in_flight -= 1

    def responded(self, status: int) -> None:
        """Count a response sent with ``status``."""
        self.responses[status] = self.responses.get(status, 0) + 1

    def fault(self, name: str) -> None:
        """Count an injected fault."""
        self.faults[name] = self.faults.get(name, 0) + 1

    def snapshot(self, now: float, cpu: float) -> Counters:
        """Return the counters at ``now``, with ``cpu`` the thread's CPU seconds."""
        return Counters(
            requests=self.requests,
            responses=dict(self.responses),
            rate_limited=self.rate_limited,
            faults=dict(self.faults),
            admitted=self.admitted,
            tokens_charged=self.tokens_charged,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            in_flight=self.in_flight,
            peak_in_flight=self.peak_in_flight,
            peak_admitted_per_second=self.peak_admitted,
            peak_tokens_per_second=self.peak_tokens,
            cpu_seconds=max(0.0, cpu - self._cpu_base),
            elapsed_seconds=max(0.0, now - self._started),
        )
