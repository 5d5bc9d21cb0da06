"""Reporting progress as outcomes arrive: a tqdm bar and the ``on_outcome`` hook.

tqdm is an optional extra (``anyfan[progress]``), imported only when a bar is
asked for; ``tqdm.auto`` picks the notebook widget inside Jupyter. With neither
option set, the engine is handed no observer at all, so there is no cost.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from ._outcome import Outcome

Observer = Callable[[Outcome[Any, Any]], None]

#: How often, in outcomes, the bar's error and retry counts are refreshed.
_POSTFIX_EVERY = 64


def total_of(items: object) -> int | None:
    """The number of items if it can be known without consuming them."""
    if hasattr(items, "__aiter__"):
        return None
    # length_hint already answers the default when __length_hint__ raises TypeError.
    hint = operator.length_hint(items, -1)
    return None if hint < 0 else hint


class Bar:
    """A tqdm bar that counts outcomes, with the failures and retries seen so far."""

    def __init__(self, total: int | None, desc: str | None = None) -> None:
        try:
            from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise ImportError(
                "progress=True draws its bar with tqdm, which is not installed; "
                "install it with: pip install 'anyfan[progress]'"
            ) from None
        self._bar: Any = tqdm(total=total, desc=desc or "anyfan", unit="call", dynamic_ncols=True)
        self.failed = 0
        self.retried = 0
        self._seen = 0

    def __call__(self, outcome: Outcome[Any, Any]) -> None:
        self._seen += 1
        if outcome.error is not None:
            self.failed += 1
        self.retried += outcome.attempts - 1
        if outcome.error is not None or self._seen % _POSTFIX_EVERY == 0:
            self._bar.set_postfix(failed=self.failed, retried=self.retried, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        """Draw the final state and release the bar."""
        self._bar.set_postfix(failed=self.failed, retried=self.retried, refresh=False)
        self._bar.close()


def make_observer(
    items: object, progress: bool | str, on_outcome: Observer | None
) -> tuple[Observer | None, Callable[[], None]]:
    """Return the observer the engine calls per outcome (or None) and a closer.

    ``progress`` may be a string, which then labels the bar.
    """
    if on_outcome is not None and not callable(on_outcome):
        raise TypeError(f"on_outcome must be a function or None, got {on_outcome!r}")
    if not isinstance(progress, bool | str):
        raise TypeError(f"progress must be a bool or a label, got {progress!r}")
    if not progress:
        return on_outcome, _nothing
    bar = Bar(total_of(items), progress if isinstance(progress, str) else None)
    if on_outcome is None:
        return bar, bar.close

    def both(outcome: Outcome[Any, Any]) -> None:
        bar(outcome)
        on_outcome(outcome)

    return both, bar.close


def _nothing() -> None:
    pass
