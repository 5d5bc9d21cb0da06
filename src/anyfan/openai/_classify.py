"""Which failed OpenAI calls can heal, and how long the server asks us to wait (sans-I/O).

The rules follow the openai SDK's own, with one correction: a 429 whose code
is ``insufficient_quota`` is a billing problem that no retry can heal, so it
is never retried (the SDK retries it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ._headers import header, retry_after

#: Statuses worth another attempt: request timeout, lock conflict, rate limit.
RETRY_STATUSES: Final = frozenset({408, 409, 429})

#: Error codes that mean "stop": retrying only burns quota and time.
NEVER_RETRY_CODES: Final = frozenset({"insufficient_quota", "billing_hard_limit_reached"})


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a failure may be retried, and the server-directed delay if any."""

    retry: bool
    delay: float | None
    reason: str


def error_code(body: object) -> str | None:
    """The ``error.code`` (or ``code``) of an OpenAI-style error body, if present."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            code = inner.get("code") or inner.get("type")
            return code if isinstance(code, str) else None
    return None


def classify_response(status: int, headers: Mapping[str, str] | Any, body: object) -> Verdict:
    """Judge an HTTP error response by status, headers and parsed JSON body."""
    delay = retry_after(headers)
    code = error_code(body)
    if code in NEVER_RETRY_CODES:
        return Verdict(False, None, f"HTTP {status} {code}: billing, not rate; never retried")
    should = header(headers, "x-should-retry")
    if should == "true":
        return Verdict(True, delay, f"HTTP {status}: server sent x-should-retry: true")
    if should == "false":
        return Verdict(False, None, f"HTTP {status}: server sent x-should-retry: false")
    if status in RETRY_STATUSES or status >= 500:
        return Verdict(True, delay, f"HTTP {status}" + (f" {code}" if code else ""))
    return Verdict(False, None, f"HTTP {status}: client error, not retried")


def classify_exception(exc: BaseException) -> Verdict:
    """Judge an exception raised by the openai SDK, httpx/httpx2, aiohttp or anyfan.

    Status errors are judged by `classify_response`; connection errors and
    timeouts may be retried; anything else is not.
    """
    if not isinstance(exc, Exception):
        return Verdict(False, None, "not an Exception")
    response = getattr(exc, "response", None)
    status = getattr(exc, "status_code", None)
    if status is None and response is not None:
        status = getattr(response, "status_code", None) or getattr(response, "status", None)
    if isinstance(status, int) and status >= 400:
        headers = getattr(response, "headers", None) or getattr(exc, "headers", None) or {}
        body = getattr(exc, "body", None)
        if body is None and isinstance(getattr(exc, "code", None), str):
            body = {"error": {"code": exc.code}}  # type: ignore[attr-defined]
        return classify_response(status, headers, body)
    if isinstance(exc, TimeoutError) or _named(exc, _TIMEOUT_NAMES):
        return Verdict(True, None, f"timeout: {type(exc).__name__}")
    if isinstance(exc, ConnectionError) or _named(exc, _CONNECTION_NAMES):
        return Verdict(True, None, f"connection error: {type(exc).__name__}")
    return Verdict(False, None, f"{type(exc).__name__} is not a transient error")


# Matched by class name along the MRO so that neither the SDK nor any HTTP
# client has to be imported (they are optional, and there are two httpx forks).
_TIMEOUT_NAMES: Final = frozenset({"APITimeoutError", "TimeoutException", "ServerTimeoutError"})
_CONNECTION_NAMES: Final = frozenset(
    {
        "APIConnectionError",
        "TransportError",
        "NetworkError",
        "RemoteProtocolError",
        "ClientConnectionError",
        "ClientPayloadError",
        "ServerDisconnectedError",
    }
)


def _named(exc: BaseException, names: frozenset[str]) -> bool:
    return any(cls.__name__ in names for cls in type(exc).__mro__)


def is_retryable(exc: BaseException) -> bool:
    """`anyfan.Retry`'s ``retry_on`` predicate for OpenAI-compatible calls."""
    return classify_exception(exc).retry


def delay_hint(exc: BaseException) -> float | None:
    """`anyfan.Retry`'s ``delay_hint``: the server-directed delay of a failure, if any."""
    verdict = classify_exception(exc)
    return verdict.delay if verdict.retry else None
