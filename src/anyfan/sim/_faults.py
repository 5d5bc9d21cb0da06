"""Rolling the fault dice (sans-I/O)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._config import Fault, Faults


class FaultDice:
    """Draws which fault, if any, hits each request, from one seeded sequence.

    The sequence runs over requests in arrival order, not over request bodies:
    a retried request rolls again, so every injected fault can heal.
    """

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def roll(self, faults: Faults) -> Fault | None:
        """Return the next request's fault or ``None``; draw nothing when no fault is set."""
        table = faults.table
        if not table:
            return None
        draw = self._rng.random()
        for threshold, fault in table:
            if draw < threshold:
                return fault
        return None
