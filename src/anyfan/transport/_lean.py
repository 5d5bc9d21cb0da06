"""The built-in HTTP client on asyncio: POST JSON over keep-alive HTTP/1.1 connections.

Sending a small request and reading a small response through aiohttp costs
about 240 µs of CPU here; this costs about 60. It does only what a batch of
API calls needs: keep-alive connections reused last-in first-out, TLS, and a
deadline per request. No redirects, cookies, proxies or compression (it asks
for none).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from .. import __version__
from ._http11 import Connection
from ._response import DEFAULT_MAX_RESPONSE_BYTES, ConnectionFailed, HttpResponse, RequestTimeout

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Seconds a connection may sit idle before it is closed rather than reused:
#: servers drop idle connections (uvicorn after 5 s), and a request written
#: into one that is being dropped would fail.
MAX_IDLE: Final = 4.0
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class Target:
    """Where one URL's requests go, and the request head they share (but its length)."""

    __slots__ = ("head", "host", "origin", "port", "tls")

    def __init__(self, url: str, headers: Mapping[str, str]) -> None:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or _DEFAULT_PORTS[parts.scheme]
        self.origin = (parts.scheme, self.host, self.port)
        shown = f"[{self.host}]" if ":" in self.host else self.host
        if parts.port is not None and parts.port != _DEFAULT_PORTS[parts.scheme]:
            shown += f":{parts.port}"
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        lines = [f"POST {path} HTTP/1.1", f"Host: {shown}", f"User-Agent: anyfan/{__version__}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        # Ends where the body's length goes; the key is in here, so a Target is never shown.
        self.head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")

    def __repr__(self) -> str:
        return f"<Target {self.origin[0]}://{self.host}:{self.port}>"


class LeanTransport:
    """The built-in client: keep-alive connections, at most ``concurrency`` of them in use.

    asyncio only (uvloop included).

    Args:
        headers: Headers sent with every request (the key among them).
        concurrency: Connections kept open at most.
        timeout: Seconds a request may take in all, connecting included, or ``None``.
        max_response_bytes: The largest response body read; past it the
            request fails with `ResponseTooLarge` and its connection is dropped.
    """

    name = "built-in"
    handles_timeout = True

    def __init__(
        self,
        headers: Mapping[str, str],
        concurrency: int,
        timeout: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._headers = dict(headers)
        self._max_body = max_response_bytes
        self._limit = concurrency
        self._timeout = timeout
        self._targets: dict[str, Target] = {}
        self._idle: dict[tuple[str, str, int], deque[Connection]] = {}
        self._open: set[Connection] = set()
        self._ssl: ssl.SSLContext | None = None
        self._loop = asyncio.get_running_loop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    async def post(self, url: str, body: bytes) -> HttpResponse:
        """POST ``body`` (JSON bytes) to ``url`` and read the whole response.

        Raises:
            ConnectionFailed: No complete response (refused, reset, cut off, garbled).
            RequestTimeout: None within the timeout.
            ResponseTooLarge: The body is larger than ``max_response_bytes``.
        """
        target = self._targets.get(url)
        if target is None:
            target = self._targets[url] = Target(url, self._headers)
        loop = self._loop
        timeout = self._timeout
        deadline = None if timeout is None else loop.time() + timeout
        connection = self._reuse(target.origin)
        if connection is None:
            connection = await self._connect(target, deadline)
        waiter = connection.send(b"%s%d\r\n\r\n%s" % (target.head, len(body), body))
        timer = None
        if deadline is not None:
            timer = loop.call_at(deadline, connection.expire, timeout)
        try:
            response = await waiter
        except BaseException:  # failed, timed out or cancelled mid-exchange: never reuse it
            connection.abort()
            self._open.discard(connection)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if connection.reusable:
            connection.idle_since = loop.time()
            self._idle[target.origin].append(connection)
        else:
            connection.abort()
            self._open.discard(connection)
        return response

    def _reuse(self, origin: tuple[str, str, int]) -> Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            if idle is None:
                self._idle[origin] = deque()
            return None
        oldest_allowed = self._loop.time() - MAX_IDLE
        while idle and idle[0].idle_since < oldest_allowed:  # the oldest sit at the left
            stale = idle.popleft()
            stale.abort()
            self._open.discard(stale)
        while idle:
            connection = idle.pop()  # the most recently used: least likely to be dropped
            if connection.reusable:
                return connection
            self._open.discard(connection)
        return None

    async def _connect(self, target: Target, deadline: float | None) -> Connection:
        if len(self._open) >= self._limit:
            self._close_idle()
        tls: ssl.SSLContext | None = None
        if target.tls:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        try:
            async with asyncio.timeout_at(deadline):
                _, connection = await self._loop.create_connection(
                    lambda: Connection(self._max_body),
                    target.host,
                    target.port,
                    ssl=tls,
                    server_hostname=target.host if tls else None,
                )
        except TimeoutError:
            raise RequestTimeout(f"could not connect within {self._timeout:g} s") from None
        except OSError as exc:
            raise ConnectionFailed(
                f"cannot connect to {target.host}:{target.port}: {exc}"
            ) from None
        self._open.add(connection)
        return connection

    def _close_idle(self) -> None:
        for idle in self._idle.values():
            while idle:
                connection = idle.popleft()
                connection.abort()
                self._open.discard(connection)

    async def aclose(self) -> None:
        """Close every connection."""
        for connection in list(self._open):
            connection.abort()
        self._open.clear()
        self._idle.clear()
