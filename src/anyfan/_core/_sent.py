"""When an admitted call's request really left: the delay that sizes the slice guard.

`Limits` records each ticket it admits in a context variable; the code
that sends the request (the OpenAI adapter's HTTP hooks, or a user's own
transport) calls `note_sent` as the request leaves, from the same task, and
every rate that admitted the call learns the delay (`Rate.report_delay`).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._rate import Ticket

#: The ticket of the current task's latest admission not yet reported as sent.
ADMITTED: ContextVar[Ticket | None] = ContextVar("anyfan_admitted", default=None)


def send_pending() -> bool:
    """Whether the current task's latest admission still waits for `note_sent`."""
    return ADMITTED.get() is not None


def note_sent(now: float | None = None) -> float | None:
    """Report that the current call's request is leaving now; return its delay.

    The delay runs from the call's admission by its limits to ``now`` (by
    default the limiter's clock). Each admission is reported once: later
    calls for the same one (a redirect, say) return ``None``, as does a call
    with no limits.
    """
    ticket = ADMITTED.get()
    if ticket is None:
        return None
    ADMITTED.set(None)
    limits = ticket._limits
    t = limits.now() if now is None else now
    delay = t - ticket.start
    limits.report_delay(delay, t)
    return delay
