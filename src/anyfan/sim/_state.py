"""Everything the simulator knows, owned by its server thread (sans-I/O).

Only the server's event loop touches a `SimState` while the server runs; the
public handle reaches it through that loop, so no lock is needed anywhere.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ._content import EmbeddingPool
from ._counters import Counters, Tally
from ._faults import FaultDice
from ._limiter import RateLimiter
from ._requests import MAX_DIMENSIONS

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._config import Faults, Latency, ServerLimits

DEFAULT_MODELS: Final = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "gpt-3.5-turbo-instruct",
    "text-embedding-3-small",
    "text-embedding-3-large",
)
#: Natural reply lengths, in tokens, before ``max_tokens`` cuts them.
DEFAULT_REPLY_TOKENS: Final = (10, 40)
DEFAULT_EMBEDDING_DIMENSIONS: Final = 1536
#: Distinct starting points for embedding windows.
_POOL_SIZE: Final = 4096


@dataclass(frozen=True, slots=True)
class Content:
    """What the simulator writes: settings fixed for the life of a server.

    Args:
        seed: Seed of the fake content, the fault dice and the latency jitter.
        reply_tokens: Shortest and longest natural reply, in tokens.
        models: Model ids listed by ``GET /v1/models`` (any model is accepted).
        embedding_dimensions: Length of an embedding when the request sets no ``dimensions``.
    """

    seed: int = 0
    reply_tokens: tuple[int, int] = DEFAULT_REPLY_TOKENS
    models: tuple[str, ...] = DEFAULT_MODELS
    embedding_dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {self.seed!r}")
        if not -(1 << 63) <= self.seed < 1 << 63:
            raise ValueError(f"seed must fit in 64 bits, got {self.seed!r}")
        shortest, longest = self.reply_tokens
        if not 1 <= shortest <= longest:
            raise ValueError(
                f"reply_tokens must be (shortest, longest) with 1 <= shortest <= longest, "
                f"got {self.reply_tokens!r}"
            )
        if not 1 <= self.embedding_dimensions <= MAX_DIMENSIONS:
            raise ValueError(
                f"embedding_dimensions must be between 1 and {MAX_DIMENSIONS}, "
                f"got {self.embedding_dimensions!r}"
            )
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "reply_tokens", tuple(self.reply_tokens))
        if not self.models or "" in self.models or not all(isinstance(m, str) for m in self.models):
            raise ValueError(f"models must be a non-empty sequence of ids, got {self.models!r}")


class SimState:
    """Configuration, limiter, dice and counters of one simulator."""

    def __init__(
        self,
        *,
        limits: ServerLimits,
        faults: Faults,
        latency: Latency,
        content: Content,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self.content = content
        self.limits = limits
        self.faults = faults
        self.latency = latency
        self.clock = clock
        self._cpu_clock = cpu_clock
        self._pool: EmbeddingPool | None = None
        self.last_cpu = 0.0
        self.reset()

    def reset(self) -> None:
        """Forget all traffic: counters, rate-limit budgets, dice and jitter start afresh."""
        seed = self.content.seed
        self.epoch = self.clock()
        self.limiter = RateLimiter(self.limits)
        self.dice = FaultDice(seed)
        self.jitter = random.Random(~seed)
        self.served = 0
        self.tally = Tally(0.0, self._cpu_clock())

    def now(self) -> float:
        """Return the seconds since the epoch of the rate-limit slices (the last reset)."""
        return self.clock() - self.epoch

    def configure(
        self,
        *,
        limits: ServerLimits | None = None,
        faults: Faults | None = None,
        latency: Latency | None = None,
    ) -> None:
        """Replace some settings; new limits start every key's budget afresh."""
        if limits is not None:
            self.limits = limits
            self.limiter = RateLimiter(limits)
        if faults is not None:
            self.faults = faults
        if latency is not None:
            self.latency = latency

    def counters(self) -> Counters:
        """Return a snapshot of the counters (call it on the server's thread)."""
        self.last_cpu = self._cpu_clock()
        return self.tally.snapshot(self.now(), self.last_cpu)

    @property
    def pool(self) -> EmbeddingPool:
        """Return the embedding pool, built on first use (most runs never embed)."""
        if self._pool is None:
            self._pool = EmbeddingPool(self.content.seed, _POOL_SIZE, MAX_DIMENSIONS)
        return self._pool

    def models(self) -> Sequence[str]:
        """Return the listed model ids."""
        return self.content.models
