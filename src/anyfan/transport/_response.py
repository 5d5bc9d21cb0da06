"""What a transport hands back: a response, or an error that says whether it can heal."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

#: Characters of a server's error message kept in an exception's text.
_SHOWN: Final = 200
#: The largest response body read by default: far above any API response, far
#: below what would exhaust memory at a job's concurrency.
DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One HTTP response, body unparsed.

    Attributes:
        status: The status code.
        headers: The response headers: a case-insensitive mapping from the
            HTTP client (aiohttp's or httpx's own type).
        body: The body's bytes, exactly as received.
    """

    status: int
    headers: Any
    body: bytes

    @property
    def status_code(self) -> int:
        """The status code (the name httpx and the openai SDK use)."""
        return self.status

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    def json(self) -> Any:
        """Decode the body as JSON; ``None`` when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None


class HttpStatusError(Exception):
    """A response whose status is not 2xx, raised so that it can be retried.

    `anyfan.openai.classify_exception` reads it like an SDK error: by its
    ``status_code``, its ``response.headers`` (``retry-after-ms``,
    ``x-should-retry``) and its ``body``'s error code.

    Attributes:
        response: The response.
    """

    def __init__(self, response: HttpResponse) -> None:
        self.response = response
        self._body: Any = _UNREAD
        super().__init__(self._describe())

    @property
    def status_code(self) -> int:
        """The response's status code."""
        return self.response.status

    @property
    def headers(self) -> Any:
        """The response's headers."""
        return self.response.headers

    @property
    def body(self) -> Any:
        """The response's body decoded as JSON (``None`` when it is not JSON)."""
        if self._body is _UNREAD:
            self._body = self.response.json()
        return self._body

    def _describe(self) -> str:
        text = f"HTTP {self.response.status}"
        error = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(error, dict):
            code = error.get("code") or error.get("type")
            if isinstance(code, str):
                text += f" {code}"
            message = error.get("message")
            if isinstance(message, str):
                shown = message if len(message) <= _SHOWN else message[: _SHOWN - 3] + "..."
                text += f": {shown}"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.response,)


_UNREAD: Final[Any] = object()


class ConnectionFailed(ConnectionError):
    """The request got no complete response: refused, reset, or cut off mid-body.

    Raised in place of the HTTP client's own error so that every client fails
    the same way, and so that no request object (holding the API key in its
    headers) travels with the error.
    """


class RequestTimeout(TimeoutError):
    """The whole response did not arrive within the transport's timeout."""


class ResponseTooLarge(Exception):
    """The response body grew past the transport's ``max_response_bytes``; it is not retried.

    The connection is dropped as soon as the limit is passed, so a server
    sending an endless body costs at most that many bytes of memory per
    request in flight.

    Attributes:
        limit: The limit, in bytes.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"the response body is larger than {limit:,} bytes (max_response_bytes); "
            "it was not read to the end"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.limit,)


def check_max_response_bytes(value: object) -> int:
    """``value`` if it is a positive int; raise `ValueError` naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_response_bytes must be a positive int, got {value!r}")
    return value
