"""Posting JSON with httpx2 or httpx, which run on trio as well as asyncio."""

from __future__ import annotations

from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from ._response import (
    DEFAULT_MAX_RESPONSE_BYTES,
    ConnectionFailed,
    HttpResponse,
    ResponseTooLarge,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import ModuleType


class HttpxTransport:
    """One httpx (or httpx2) client with a pool of ``concurrency`` connections.

    Args:
        module: The ``httpx2`` or ``httpx`` module (they share an API).
        headers: Headers sent with every request (the key among them).
        concurrency: Most connections open at once.
        max_response_bytes: The largest response body read; past it the
            request fails with `ResponseTooLarge` and its connection is dropped.
    """

    #: Calls are timed by the caller: httpx's timeouts bound each read, not the whole request.
    handles_timeout = False

    def __init__(
        self,
        module: ModuleType,
        headers: Mapping[str, str],
        concurrency: int,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.name: str = module.__name__
        self._max_body = max_response_bytes
        limits = module.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        # The engine times each call; httpx's own timeouts would only add a second clock.
        self._client: Any = module.AsyncClient(
            headers=dict(headers), limits=limits, timeout=None, follow_redirects=False
        )
        self._transport_error = module.TransportError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    async def post(self, url: str, body: bytes) -> HttpResponse:
        """POST ``body`` (JSON bytes) to ``url`` and read the whole response.

        Raises:
            ConnectionFailed: No complete response (refused, reset, cut off).
            ResponseTooLarge: The body is larger than ``max_response_bytes``.
        """
        limit = self._max_body
        parts: list[bytes] = []
        size = 0
        try:
            # Leaving the block early closes the response and drops its connection.
            async with (
                self._client.stream("POST", url, content=body) as response,
                aclosing(response.aiter_bytes()) as received,
            ):
                async for part in received:
                    size += len(part)
                    if size > limit:
                        raise ResponseTooLarge(limit)
                    parts.append(part)
        except self._transport_error as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}") from None
        raw = parts[0] if len(parts) == 1 else b"".join(parts)
        return HttpResponse(response.status_code, response.headers, raw)

    async def aclose(self) -> None:
        """Close the client and its connections."""
        await self._client.aclose()
