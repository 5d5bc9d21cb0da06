"""Where telemetry plugs into the engine, without the engine knowing OpenTelemetry.

`anyfan.otel.instrument` installs a `Telemetry`; until then the engine pays
one global read per item to find that out, and while the telemetry has no
SDK to report to, about as little more (see `current`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence
    from contextlib import AbstractContextManager

    from ._hooks import PauseEvent, RetryEvent
    from ._rate import Rate


class Attempt(Protocol):
    """One attempt in progress: told how it ended."""

    def succeeded(self, value: Any) -> None:
        """The attempt returned ``value``."""

    def failed(self, error: BaseException) -> None:
        """The attempt raised ``error`` (cancellation included)."""


class Telemetry(Protocol):
    """What the engine reports, attempt by attempt."""

    def live(self) -> bool:
        """Whether anything would be recorded now (an SDK is configured)."""
        ...

    def attempt(self, item: Any, number: int) -> AbstractContextManager[Attempt]:
        """Enter around one attempt (the span is current while the call runs)."""
        ...

    def waited(self, seconds: float) -> None:
        """An attempt waited ``seconds`` for the rate limits (and shared pause)."""

    def admitted(self, rates: Sequence[Rate], units: Sequence[float]) -> None:
        """An attempt was admitted, charged ``units`` against each of ``rates``."""

    def settled(self, rates: Sequence[Rate], units: Sequence[float]) -> None:
        """An attempt's charges were settled at ``units`` (its actual costs)."""

    def failed(self, error: Exception) -> None:
        """A call failed for good (no retry follows)."""

    def retried(self, event: RetryEvent[Any]) -> None:
        """A failed attempt will be retried."""

    def paused(self, event: PauseEvent[Any]) -> None:
        """The shared pause was started or extended."""


class _Slot:
    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active: Telemetry | None = None


#: The telemetry installed for every Fan, or ``None`` (the default: no cost).
CURRENT = _Slot()


def current() -> Telemetry | None:
    """The telemetry to report to now: installed, and with somewhere to report to."""
    telemetry = CURRENT.active
    if telemetry is None or not telemetry.live():
        return None
    return telemetry


def installed() -> Telemetry | None:
    """The telemetry installed now, live or not (``None`` if none is)."""
    return CURRENT.active


def install(telemetry: Telemetry | None) -> Telemetry | None:
    """Make ``telemetry`` the one in force (``None`` to turn it off); return the previous one."""
    previous, CURRENT.active = CURRENT.active, telemetry
    return previous
