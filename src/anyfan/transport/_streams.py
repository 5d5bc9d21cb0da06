"""The built-in HTTP client on anyio byte streams: the same client on every event loop.

It shares `ResponseReader` (the sans-I/O response parser) and `Target` (the
request head, built once per URL) with the asyncio client in `._lean`, and
keeps the same pool: keep-alive connections reused last-in first-out, retired
after `MAX_IDLE` seconds idle, at most ``concurrency`` open. It connects with
`anyio.connect_tcp` and wraps https in anyio's TLS stream. Under asyncio the
protocol-based client stays the default (it skips a stream layer); this one
runs under trio, where it replaces httpx.

A stream sees that the server closed an idle connection only when it reads
from it, after the next request was written. So a request that finds its
reused connection closed before any byte of a response came back is sent once
more on a new connection: the server closed that connection without reading
the request (as urllib3 and httpcore do, for the same reason).
"""

from __future__ import annotations

import ssl
from collections import deque
from typing import TYPE_CHECKING, Final

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from ._http11 import ResponseReader
from ._lean import MAX_IDLE, Target
from ._response import DEFAULT_MAX_RESPONSE_BYTES, ConnectionFailed, RequestTimeout

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._response import HttpResponse

#: Bytes asked for per read: a small response arrives in one.
READ_SIZE: Final = 65536
#: Errors of a stream that mean the connection is gone.
_GONE: Final = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class StreamConnection(ResponseReader):
    """One keep-alive connection over an anyio byte stream; one exchange at a time."""

    def __init__(self, stream: anyio.abc.ByteStream, max_body: int) -> None:
        super().__init__(max_body)
        self.stream = stream
        self.idle_since = 0.0
        self.reused = False

    async def exchange(self, data: bytes) -> HttpResponse:
        """Write a request and read its whole response.

        Raises:
            ConnectionFailed: No complete response; the message says why.
            ResponseTooLarge: The body is larger than ``max_body``.
        """
        stream = self.stream
        try:
            await stream.send(data)
            while True:
                try:
                    chunk = await stream.receive(READ_SIZE)
                except anyio.EndOfStream:
                    return self.eof_response()
                response = self.feed(chunk)
                if response is not None:
                    return response
        except _GONE as exc:
            if self._headers is None:
                reason = f"the connection failed before a response ({exc!r})"
            else:
                reason = f"the connection failed in the middle of the response ({exc!r})"
            raise ConnectionFailed(reason) from None


class StreamTransport:
    """The built-in client on anyio streams: keep-alive connections, ``concurrency`` at most.

    Runs on asyncio and trio alike.

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
        self._idle: dict[tuple[str, str, int], deque[StreamConnection]] = {}
        self._open: set[StreamConnection] = set()
        self._stale: list[StreamConnection] = []  # retired by _reuse, to be closed
        self._ssl: ssl.SSLContext | None = None

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
        data = b"%s%d\r\n\r\n%s" % (target.head, len(body), body)
        if self._timeout is None:
            return await self._post(target, data)
        with anyio.move_on_after(self._timeout) as scope:
            return await self._post(target, data)
        assert scope.cancel_called
        raise RequestTimeout(f"no complete response within {self._timeout:g} s")

    async def _post(self, target: Target, data: bytes) -> HttpResponse:
        while True:
            connection = self._reuse(target.origin)
            if self._stale:
                await self._close_stale()
            if connection is None:
                connection = await self._connect(target)
            try:
                response = await connection.exchange(data)
            except ConnectionFailed:
                await self._close(connection)
                if connection.reused and not connection.started:
                    continue  # closed by the server while idle, the request unread
                raise
            except BaseException:  # timed out, cancelled or too large: never reuse it
                await self._close(connection)
                raise
            if connection.keep_alive:
                connection.idle_since = anyio.current_time()
                connection.reused = True
                self._idle[target.origin].append(connection)
            else:
                await self._close(connection)
            return response

    def _reuse(self, origin: tuple[str, str, int]) -> StreamConnection | None:
        idle = self._idle.get(origin)
        if not idle:
            if idle is None:
                self._idle[origin] = deque()
            return None
        oldest_allowed = anyio.current_time() - MAX_IDLE
        while idle and idle[0].idle_since < oldest_allowed:  # the oldest sit at the left
            self._stale.append(idle.popleft())
        return idle.pop() if idle else None  # the most recently used: least likely dropped

    async def _connect(self, target: Target) -> StreamConnection:
        if len(self._open) >= self._limit:
            await self._close_idle()
        try:
            stream: anyio.abc.ByteStream = await anyio.connect_tcp(target.host, target.port)
            if target.tls:
                if self._ssl is None:
                    self._ssl = ssl.create_default_context()
                stream = await TLSStream.wrap(
                    stream,
                    hostname=target.host,
                    ssl_context=self._ssl,
                    standard_compatible=False,  # servers commonly close without close_notify
                )
        except (OSError, ssl.SSLError, anyio.BrokenResourceError) as exc:
            raise ConnectionFailed(
                f"cannot connect to {target.host}:{target.port}: {exc}"
            ) from None
        connection = StreamConnection(stream, self._max_body)
        self._open.add(connection)
        return connection

    async def _close(self, connection: StreamConnection) -> None:
        """Drop a connection, with no TLS goodbye; shielded, as it runs when a deadline passed."""
        self._open.discard(connection)
        with anyio.CancelScope(shield=True):
            await anyio.aclose_forcefully(connection.stream)

    async def _close_stale(self) -> None:
        while self._stale:
            await self._close(self._stale.pop())

    async def _close_idle(self) -> None:
        for idle in self._idle.values():
            while idle:
                await self._close(idle.popleft())

    async def aclose(self) -> None:
        """Close every connection."""
        for connection in list(self._open):
            await self._close(connection)
        self._idle.clear()
