"""The ``anyfan`` logger: retries and pauses at INFO, give-ups at WARNING.

Silent unless the application configures logging (a library's duty: a
`logging.NullHandler` is attached). Messages name the error's type and its
first line, with anything shaped like a credential blanked out; the item
itself is passed in ``extra`` (as ``anyfan_item``) rather than printed,
since items carry prompts and other user data.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final

log: Final = logging.getLogger("anyfan")
log.addHandler(logging.NullHandler())

#: Credentials as providers print them: ``sk-...`` keys, bearer tokens, ``api_key=...``.
_SECRET: Final = re.compile(
    r"(?i)\b(sk|rk|pk)-[A-Za-z0-9_\-]{6,}"
    r"|(bearer\s+)[A-Za-z0-9._~+/\-]{6,}=*"
    r"|((?:api[_-]?key|token|secret|password)\s*[=:]\s*)[^\s,;&]+"
)

#: Longest error message logged; the rest is cut.
MAX_MESSAGE: Final = 200


def _blank(match: re.Match[str]) -> str:
    prefix = match.group(2) or match.group(3)
    if prefix:
        return prefix + "***"
    return match.group(1) + "-***"


def redact(text: str) -> str:
    """Return ``text`` with anything shaped like a key or token blanked out, cut short."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    if len(first) > MAX_MESSAGE:
        first = first[:MAX_MESSAGE] + "..."
    return _SECRET.sub(_blank, first)


def describe(error: BaseException) -> str:
    """``"TypeName: first line of the message"``, redacted."""
    message = redact(str(error))
    name = type(error).__name__
    return f"{name}: {message}" if message else name


def retrying(item: Any, attempt: int, error: Exception, delay: float) -> None:
    """Log a retry at INFO."""
    if log.isEnabledFor(logging.INFO):
        log.info(
            "attempt %d failed (%s); retrying in %.3gs",
            attempt,
            describe(error),
            delay,
            extra={"anyfan_item": item},
        )


def pausing(item: Any, error: Exception, seconds: float) -> None:
    """Log a shared pause at INFO."""
    if log.isEnabledFor(logging.INFO):
        log.info(
            "pausing new calls for %.3gs: the server asked to wait (%s)",
            seconds,
            describe(error),
            extra={"anyfan_item": item},
        )


def giving_up(item: Any, attempt: int, error: Exception, reason: str) -> None:
    """Log at WARNING that a retryable failure is final (out of attempts, deadline or budget)."""
    if log.isEnabledFor(logging.WARNING):
        log.warning(
            "giving up after %d attempt%s (%s): %s",
            attempt,
            "" if attempt == 1 else "s",
            _REASONS.get(reason, reason),
            describe(error),
            extra={"anyfan_item": item},
        )


_REASONS: Final = {
    "attempts": "no attempts left",
    "deadline": "retry deadline reached",
    "budget": "retry budget spent",
}
