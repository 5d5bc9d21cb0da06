"""Why a request failed, as a short cause, and which failures stop the whole job (sans-I/O).

A cause is the HTTP status with the provider's error code (``HTTP 429
insufficient_quota`` apart from ``HTTP 429 rate_limit_exceeded``), or the
kind of error a request ended with when no response came (``timeout``,
``connection_error``). The summary counts failures by cause and shows the
first message of each.

Some failures are not the failure of one line but of the whole job: the key
is refused (401), the account may not use the API (403), or it has no money
left (``insufficient_quota``). Every other line would fail the same way, so
the job stops at once instead of burning the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

#: Provider error codes that mean the account cannot pay: they never heal by retrying.
BILLING_CODES: Final = frozenset({"insufficient_quota", "billing_hard_limit_reached"})
#: Longest first message kept per cause, in characters.
MESSAGE_CHARS: Final = 300


@dataclass(slots=True)
class Cause:
    """How often one cause of failure was seen, and its first message.

    Attributes:
        count: Failures with this cause.
        message: The first one's message (may be empty).
    """

    count: int
    message: str


def body_value(body: Any) -> Any:
    """A response body as a JSON value: bytes are decoded when they are JSON, else kept as text."""
    if isinstance(body, bytes | bytearray | memoryview):
        raw = bytes(body)
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            return raw.decode(errors="replace")
    return body


def _error_fields(body: Any) -> tuple[str | None, str]:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        message = error.get("message")
        return (code if isinstance(code, str) and code else None), (
            message if isinstance(message, str) else ""
        )
    if isinstance(body, str):
        return None, body
    return None, ""


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."


def response_cause(status_code: int, body: Any) -> tuple[str, str]:
    """The cause and message of a failed response: ``("HTTP 429 insufficient_quota", "...")``."""
    code, message = _error_fields(body_value(body))
    name = f"HTTP {status_code} {code}" if code else f"HTTP {status_code}"
    return name, _short(message)


def error_cause(error: Any) -> tuple[str, str]:
    """The cause and message of an error record (``{"code": "timeout", "message": ...}``)."""
    if not isinstance(error, dict):
        return "error", _short(str(error))
    code = error.get("code") or error.get("type") or "error"
    message = error.get("message")
    return str(code), _short(message if isinstance(message, str) else "")


def job_stopper(status_code: int, body: Any) -> str | None:
    """Why a response stops the whole job, or ``None`` when it fails its line alone.

    401 (the key is refused), 403 (the account or key may not do this) and a
    429 with a billing code (``insufficient_quota``) stop the job: every other
    line would fail the same way until the cause is fixed.
    """
    if status_code not in (401, 403, 429):
        return None
    code, message = _error_fields(body_value(body))
    text = _short(message)
    detail = f" ({code}: {text})" if code else (f" ({text})" if text else "")
    if status_code == 401:
        return f"the server refused the API key: HTTP 401{detail}"
    if status_code == 403:
        return f"the server denied access: HTTP 403{detail}"
    if code in BILLING_CODES:
        return f"the account has no quota left: HTTP 429{detail}"
    return None


def error_text(error: BaseException) -> str:
    """``Type: message`` for an error, with the root cause added when it says more.

    HTTP clients wrap the reason a host is unreachable (refused, no such
    name, no route) in errors of their own, some of which drop it from their
    message ("All connection attempts failed"); the innermost cause names it.
    """
    text = f"{type(error).__name__}: {str(error) or type(error).__name__}"
    root, seen = error, {id(error)}
    while True:
        inner = root.__cause__ or root.__context__
        if inner is None or id(inner) in seen:
            break
        seen.add(id(inner))
        root = inner
    if root is not error:
        reason = str(root) or type(root).__name__
        if reason not in text:
            text += f" ({type(root).__name__}: {reason})"
    return text
