"""What guards each call besides the concurrency limit: rate limits, shared pause, retries."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._hooks import Hooks
from ._rate import Limits
from ._retry import Pause, Retry
from ._telemetry import current


class Policy:
    """The limits, shared pause and retry policy one run obeys.

    A Fan keeps one for its own options so that the quota and the pause are
    shared by every run; a call that adds limits of its own gets a new one
    that still holds the Fan's rates and pause.
    """

    __slots__ = ("hooks", "limits", "pause", "retry")

    def __init__(
        self,
        *,
        limits: Iterable[Any] = (),
        retry: Retry | None = None,
        pause: Pause | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        if retry is not None and not isinstance(retry, Retry):
            raise TypeError(f"retry must be an anyfan.Retry or None, got {retry!r}")
        if pause is None and retry is not None:
            pause = Pause(ramp=retry.ramp)
        limits = tuple(limits)
        self.retry = retry
        self.pause = pause
        self.limits = Limits(limits, pause=pause) if limits else None
        self.hooks = Hooks() if hooks is None else hooks

    @property
    def active(self) -> bool:
        """Whether anything beyond the concurrency limit applies (telemetry included)."""
        return self.limits is not None or self.retry is not None or current() is not None

    def bind(self) -> None:
        """Attach to the running event loop (see `Limits.bind`)."""
        if self.limits is not None:
            self.limits.bind()
        elif self.pause is not None:
            self.pause.bind()
