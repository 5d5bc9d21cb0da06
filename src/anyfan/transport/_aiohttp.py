"""Posting JSON with aiohttp (asyncio only): the cheapest client per request by far."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._response import (
    DEFAULT_MAX_RESPONSE_BYTES,
    ConnectionFailed,
    HttpResponse,
    RequestTimeout,
    ResponseTooLarge,
)

if TYPE_CHECKING:
    from collections.abc import Mapping


class AiohttpTransport:
    """One aiohttp session with a pool of ``concurrency`` connections.

    aiohttp times each request itself, with one timer handle: several times
    cheaper than a cancel scope around the call.

    Args:
        headers: Headers sent with every request (the key among them).
        concurrency: Most connections open at once.
        timeout: Seconds a request may take in all, or ``None``.
        max_response_bytes: The largest response body read; past it the
            request fails with `ResponseTooLarge` and its connection is dropped.
    """

    name = "aiohttp"
    handles_timeout = True

    def __init__(
        self,
        headers: Mapping[str, str],
        concurrency: int,
        timeout: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._max_body = max_response_bytes
        import aiohttp
        import yarl

        self._aiohttp = aiohttp
        self._url = yarl.URL
        self._urls: dict[str, Any] = {}
        connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=dict(headers),
            timeout=aiohttp.ClientTimeout(total=timeout),
            skip_auto_headers=("User-Agent",),
            auto_decompress=True,
        )
        self._timeout = timeout
        self._connection_errors = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    async def post(self, url: str, body: bytes) -> HttpResponse:
        """POST ``body`` (JSON bytes) to ``url`` and read the whole response.

        Raises:
            ConnectionFailed: No complete response (refused, reset, cut off).
            RequestTimeout: None within the timeout.
            ResponseTooLarge: The body is larger than ``max_response_bytes``.
        """
        target = self._urls.get(url)
        if target is None:
            # Parsed once per endpoint: yarl's parsing is a visible share of a request's CPU.
            target = self._urls[url] = self._url(url, encoded=True)
        try:
            async with self._session.post(target, data=body) as response:
                limit = self._max_body
                length = response.content_length
                if (
                    length is not None
                    and length <= limit
                    and "Content-Encoding" not in response.headers
                ):
                    # Framed by its length and not decompressed: it cannot grow past it.
                    raw = await response.read()
                    return HttpResponse(response.status, response.headers, raw)
                parts: list[bytes] = []
                size = 0
                async for part in response.content.iter_any():
                    size += len(part)
                    if size > limit:
                        response.close()  # drop the connection: the rest is never read
                        raise ResponseTooLarge(limit)
                    parts.append(part)
                return HttpResponse(response.status, response.headers, b"".join(parts))
        except TimeoutError:  # aiohttp's own timers (its ServerTimeoutError included)
            raise RequestTimeout(f"no complete response within {self._timeout:g} s") from None
        except self._connection_errors as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        """Close the session and its connections."""
        await self._session.close()
