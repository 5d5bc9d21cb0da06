"""Which failed OpenAI calls can heal, and how long the server asks us to wait (sans-I/O).

The rules follow the openai SDK's own, with two corrections: a 429 whose code
is ``insufficient_quota`` (a billing problem) and a 429 for a request larger
than the whole limit can never heal, so neither is retried (the SDK retries
both).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ._headers import header, retry_after

#: Statuses worth another attempt besides 5xx: request timeout, lock conflict, rate limit.
RETRY_STATUSES: Final = frozenset({408, 409, 429})

#: Error codes that mean "stop": retrying only burns quota and time.
NEVER_RETRY_CODES: Final = frozenset({"insufficient_quota", "billing_hard_limit_reached"})

#: How OpenAI's 429 for a request above the whole TPM limit begins; waiting never admits it.
TOO_LARGE: Final = "Request too large"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a failure may be retried, and the server-directed delay if any.

    Attributes:
        retry: Whether another attempt may succeed.
        delay: Seconds the server asked to wait (``retry-after-ms`` or
            ``retry-after``), or ``None``.
        reason: Why, in words, for logs and error messages.
    """

    retry: bool
    delay: float | None
    reason: str


def _error_fields(body: object) -> tuple[str | None, str]:
    """The ``code`` (else ``type``) and ``message`` of an OpenAI-style error body."""
    if not isinstance(body, Mapping):
        return None, ""
    inner = body.get("error", body)
    if not isinstance(inner, Mapping):
        return None, ""
    code = inner.get("code") or inner.get("type")
    message = inner.get("message")
    return (
        code if isinstance(code, str) else None,
        message if isinstance(message, str) else "",
    )


def error_code(body: object) -> str | None:
    """The ``error.code`` (else ``error.type``) of an OpenAI-style error body, if any.

    The body may be the whole JSON document or its ``error`` object, which is
    what the openai SDK keeps as an exception's ``body``.
    """
    return _error_fields(body)[0]


def classify_response(status: int, headers: Mapping[str, str] | Any, body: object) -> Verdict:
    """Judge an HTTP error response by its status, headers and parsed JSON body.

    In order: billing errors (``insufficient_quota``) and requests too large
    for the limit are never retried; then ``x-should-retry: true|false`` from
    the server decides; then 408, 409, 429 and 5xx are retried and every other
    status is not. The delay comes from `retry_after`.
    """
    code, message = _error_fields(body)
    if code in NEVER_RETRY_CODES:
        return Verdict(False, None, f"HTTP {status} {code}: a billing error, which never heals")
    if status == 429 and message.startswith(TOO_LARGE):
        return Verdict(False, None, f"HTTP {status}: the request is larger than the whole limit")
    delay = retry_after(headers)
    should = header(headers, "x-should-retry")
    if should == "true":
        return Verdict(True, delay, f"HTTP {status}: the server sent x-should-retry: true")
    if should == "false":
        return Verdict(False, None, f"HTTP {status}: the server sent x-should-retry: false")
    if status in RETRY_STATUSES or status >= 500:
        return Verdict(True, delay, f"HTTP {status}" + (f" {code}" if code else ""))
    return Verdict(False, None, f"HTTP {status}" + (f" {code}" if code else "") + ": not retried")


def classify_exception(exc: BaseException) -> Verdict:
    """Judge an exception raised by the openai SDK, httpx/httpx2, aiohttp or anyfan.

    HTTP status errors (the SDK's ``APIStatusError``, httpx's
    ``HTTPStatusError``, aiohttp's ``ClientResponseError``) are judged by
    `classify_response`. Timeouts and connection errors may be retried, unless
    they stem from a request that can never be sent (a malformed URL, say).
    Anything else is not retried. Classes are recognised by name, so neither
    the SDK nor any HTTP client needs to be imported.
    """
    if not isinstance(exc, Exception):
        return Verdict(False, None, f"{type(exc).__name__} is never retried")
    status, headers, body = _http_error(exc)
    if status is not None:
        return classify_response(status, headers, body)
    if _caused_by(exc, _PERMANENT_NAMES):
        return Verdict(False, None, f"{type(exc).__name__}: the request can never be sent")
    if isinstance(exc, TimeoutError) or _named(exc, _TIMEOUT_NAMES):
        return Verdict(True, None, f"timeout: {type(exc).__name__}")
    if isinstance(exc, ConnectionError) or _named(exc, _CONNECTION_NAMES):
        return Verdict(True, None, f"connection error: {type(exc).__name__}")
    return Verdict(False, None, f"{type(exc).__name__} is not a transient error")


def _http_error(exc: Exception) -> tuple[int | None, Any, object]:
    """The status (``None`` if not an HTTP error), headers and body an exception carries."""
    response = getattr(exc, "response", None)
    status = _status(exc, "status_code")
    if status is None:
        status = _status(exc, "status")  # aiohttp.ClientResponseError
    if status is None and response is not None:
        status = _status(response, "status_code")
        if status is None:
            status = _status(response, "status")
    if status is None or status < 400:
        return None, None, None
    headers = getattr(response, "headers", None)
    if headers is None:
        headers = getattr(exc, "headers", None)
    body = getattr(exc, "body", None)
    if body is None and response is not None:
        body = _json_of(response)
    # Read without running properties: aiohttp's ``code`` warns that it is deprecated.
    if body is None and isinstance(code := inspect.getattr_static(exc, "code", None), str):
        body = {"code": code}
    return status, {} if headers is None else headers, body


def _status(obj: object, name: str) -> int | None:
    value = getattr(obj, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _json_of(response: object) -> object:
    """The parsed body of an httpx response that was read, else ``None``."""
    parse = getattr(response, "json", None)
    if not callable(parse):
        return None
    try:
        return parse()
    except Exception:  # not read yet (streamed), or not JSON: judge by status alone
        return None


# Matched by class name along the MRO so that neither the SDK nor any HTTP
# client has to be imported (they are optional, and there are two httpx forks).
_TIMEOUT_NAMES: Final = frozenset(
    {
        "APITimeoutError",  # openai
        "TimeoutException",  # httpx, httpx2: connect, read, write and pool timeouts
        "ServerTimeoutError",  # aiohttp
    }
)
_CONNECTION_NAMES: Final = frozenset(
    {
        "APIConnectionError",  # openai, wrapping any transport error
        "NetworkError",  # httpx: connect, read, write and close errors
        "RemoteProtocolError",  # httpx, h11: the peer broke off mid-message
        "ProxyError",  # httpx
        "ClientConnectionError",  # aiohttp, ServerDisconnectedError included
        "ClientPayloadError",  # aiohttp: a body cut short
    }
)
#: Transport errors that no retry can heal: the request itself cannot be sent.
_PERMANENT_NAMES: Final = frozenset(
    {"UnsupportedProtocol", "LocalProtocolError", "InvalidURL", "InvalidUrlClientError"}
)


def _named(exc: BaseException, names: frozenset[str]) -> bool:
    return any(cls.__name__ in names for cls in type(exc).__mro__)


def _caused_by(exc: BaseException, names: frozenset[str]) -> bool:
    """Whether ``exc`` or an exception it was raised ``from`` is one of ``names``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _named(current, names):
            return True
        seen.add(id(current))
        current = current.__cause__
    return False


def is_retryable(exc: BaseException) -> bool:
    """`anyfan.Retry`'s ``retry_on`` predicate for OpenAI-compatible calls.

    A client bound to another event loop (see `explain_loop_error`) is never
    retried, and its error gains a note that names the cause.
    """
    if explain_loop_error(exc):
        return False
    return classify_exception(exc).retry


#: What asyncio says when a primitive made in one event loop is used in another.
_OTHER_LOOP: Final = "bound to a different event loop"
#: The note `explain_loop_error` adds: the cause and the cure.
LOOP_NOTE: Final = (
    "anyfan: this async client was first used in another event loop, and its connections "
    "belong to that loop. Create the client in the loop that uses it: from sync code or a "
    "notebook, anyfan.openai.blocking_fan(factory=AsyncOpenAI, ...) makes it in the Fan's own "
    "loop (call through fan.client); from async code, make it inside the coroutine you run."
)


def explain_loop_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a client bound to another event loop; if so, say why.

    An ``AsyncOpenAI`` client (its httpx connection pool) belongs to the event
    loop that first used it; used from another, it fails with asyncio's
    ``RuntimeError: ... is bound to a different event loop``. That message
    names neither the client nor a cure, so `LOOP_NOTE` is added to the
    exception (once), and it shows in its traceback.
    """
    current: BaseException | None = exc
    for _ in range(8):  # the SDK may wrap it (raise ... from): follow a few causes
        if current is None:
            return False
        if isinstance(current, RuntimeError) and _OTHER_LOOP in str(current):
            if LOOP_NOTE not in getattr(exc, "__notes__", ()):
                exc.add_note(LOOP_NOTE)
            return True
        current = current.__cause__ or current.__context__
    return False


def rejected_without_work(outcome: object) -> bool:
    """Whether the provider refused the call before doing any work: a 4xx other than 429.

    The one rule anyfan settles token charges by (`request_limits`,
    `settled_tokens`, `anyfan.batch`). ``outcome`` is a call's exception (the
    SDK's ``APIStatusError``, httpx's ``HTTPStatusError``, aiohttp's
    ``ClientResponseError``, ...) or its result (anything with an int
    ``status_code`` or ``status``, such as a raw response). Such a call (a
    malformed request, an unknown model, a context too long, a key without
    access) generated nothing, so it is charged nothing against a token
    quota. A 429 is not: OpenAI counts the request that drew it.
    """
    if isinstance(outcome, Exception):
        status = _http_error(outcome)[0]
    elif isinstance(outcome, BaseException | Mapping):
        return False
    else:
        status = _status(outcome, "status_code")
        if status is None:
            status = _status(outcome, "status")
    return status is not None and 400 <= status < 500 and status != 429


def delay_hint(exc: BaseException) -> float | None:
    """`anyfan.Retry`'s ``delay_hint``: the server-directed delay of a retryable failure."""
    verdict = classify_exception(exc)
    return verdict.delay if verdict.retry else None
