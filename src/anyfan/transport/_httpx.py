"""Posting JSON with httpx2 or httpx, which run on trio as well as asyncio."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._response import ConnectionFailed, HttpResponse

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import ModuleType


class HttpxTransport:
    """One httpx (or httpx2) client with a pool of ``concurrency`` connections.

    Args:
        module: The ``httpx2`` or ``httpx`` module (they share an API).
        headers: Headers sent with every request (the key among them).
        concurrency: Most connections open at once.
    """

    #: Calls are timed by the caller: httpx's timeouts bound each read, not the whole request.
    handles_timeout = False

    def __init__(self, module: ModuleType, headers: Mapping[str, str], concurrency: int) -> None:
        self.name: str = module.__name__
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
        """
        try:
            response = await self._client.post(url, content=body)
        except self._transport_error as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}") from None
        return HttpResponse(response.status_code, response.headers, response.content)

    async def aclose(self) -> None:
        """Close the client and its connections."""
        await self._client.aclose()
