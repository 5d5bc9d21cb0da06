"""A minimal HTTP/1.1 client on asyncio's protocols: POST JSON, read the whole response.

Sending a small request and reading a small response through aiohttp costs
about 240 µs of CPU here; this costs about 60. It does only what a batch of
API calls needs: keep-alive connections to one origin reused last-in first-out,
TLS, responses framed by ``Content-Length``, chunked encoding or the end of the
connection, and a deadline per request. No redirects, cookies, proxies or
compression (it asks for none).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections import deque
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from .._version import __version__
from ._response import ConnectionFailed, HttpResponse, RequestTimeout

if TYPE_CHECKING:
    from collections.abc import Mapping

#: A response head larger than this is refused (real ones are a few KiB).
MAX_HEAD: Final = 1 << 16
#: Seconds a connection may sit idle before it is closed rather than reused:
#: servers drop idle connections (uvicorn after 5 s), and a request written
#: into one that is being dropped would fail.
MAX_IDLE: Final = 4.0
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class ProtocolError(ConnectionFailed):
    """The server's bytes are not an HTTP/1.1 response this client understands."""


class Headers(dict[str, str]):
    """Response headers: names lowercased, looked up in any case."""

    def get(self, key: str, default: Any = None) -> Any:
        """The value of header ``key`` (any case), or ``default``."""
        return dict.get(self, key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return dict.__getitem__(self, key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and dict.__contains__(self, key.lower())


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


class Connection(asyncio.Protocol):
    """One keep-alive connection; one exchange at a time."""

    transport: asyncio.Transport

    def __init__(self) -> None:
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[HttpResponse] | None = None
        self._buffer = b""
        self._reset_response()

    def _reset_response(self) -> None:
        self._status = 0
        self._headers: Headers | None = None
        self._length = -1  # -1: chunked or until the connection closes
        self._chunked = False
        self._parts: list[bytes] = []
        self._keep_alive = True

    # -- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport; send small writes at once (no Nagle delay)."""
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        """Take in bytes; finish the exchange once the response is whole."""
        if self._waiter is None:  # nothing was asked: the connection is out of step
            self.abort()
            return
        self._buffer = self._buffer + data if self._buffer else data
        try:
            response = self._parse()
        except ProtocolError as exc:
            self._fail(exc)
            self.abort()
            return
        if response is not None:
            waiter, self._waiter = self._waiter, None
            if not waiter.done():
                waiter.set_result(response)

    def eof_received(self) -> bool:
        """Let the connection close on the server's EOF."""
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Finish a response framed by the end of the connection, or fail the exchange."""
        self.closed = True
        if self._waiter is None:
            return
        if self._headers is not None and self._length < 0 and not self._chunked:
            self._parts.append(self._buffer)
            waiter, self._waiter = self._waiter, None
            if not waiter.done():
                waiter.set_result(self._response())
            return
        if self._headers is None:
            reason = "the connection closed before a response"
            if exc is not None:
                reason += f" ({exc!r})"
        else:
            reason = "the connection closed in the middle of the response"
        self._fail(ConnectionFailed(reason))

    # -- the exchange -----------------------------------------------------------------

    def send(self, data: bytes) -> asyncio.Future[HttpResponse]:
        """Write a request; return the future of its response."""
        waiter: asyncio.Future[HttpResponse] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self.transport.write(data)
        return waiter

    def expire(self, timeout: float | None) -> None:
        """Give up on the exchange in progress: its deadline passed."""
        self._fail(RequestTimeout(f"no complete response within {timeout or 0:g} s"))
        self.abort()

    def abort(self) -> None:
        """Drop the connection at once."""
        self.closed = True
        self.transport.abort()

    @property
    def reusable(self) -> bool:
        """Whether another request may go on this connection."""
        return not self.closed and self._keep_alive and self._waiter is None and not self._buffer

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    # -- parsing ----------------------------------------------------------------------

    def _parse(self) -> HttpResponse | None:
        if self._headers is None and not self._parse_head():
            return None
        if self._chunked:
            return self._parse_chunks()
        if self._length < 0:  # until the connection closes
            return None
        if len(self._buffer) < self._length:
            return None
        body, self._buffer = self._buffer[: self._length], self._buffer[self._length :]
        self._parts.append(body)
        if self._buffer:  # more than was asked for: the connection is out of step
            self._keep_alive = False
        return self._response()

    def _parse_head(self) -> bool:
        while True:
            buffer = self._buffer
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    raise ProtocolError("response head too large")
                return False
            lines = buffer[:end].decode("latin-1").split("\r\n")
            self._buffer = buffer[end + 4 :]
            version, _, rest = lines[0].partition(" ")
            code = rest[:3]
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:40]!r}")
            status = int(code)
            if 100 <= status < 200:  # an interim response (100 Continue, 103 Early Hints)
                continue
            break
        headers = Headers()
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise ProtocolError(f"malformed header line: {line[:40]!r}")
            name = name.strip().lower()
            value = value.strip()
            seen = dict.get(headers, name)
            headers[name] = value if seen is None else f"{seen}, {value}"
        self._status, self._headers = status, headers
        connection = dict.get(headers, "connection", "").lower()
        self._keep_alive = (
            "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        )
        if status in (204, 304):
            self._length = 0
        elif "chunked" in dict.get(headers, "transfer-encoding", "").lower():
            self._chunked = True
        elif (length := dict.get(headers, "content-length")) is not None:
            if not length.isdigit():
                raise ProtocolError(f"bad Content-Length: {length[:20]!r}")
            self._length = int(length)
        else:
            self._keep_alive = False
        return True

    def _parse_chunks(self) -> HttpResponse | None:
        buffer = self._buffer
        while True:
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                break
            size_text = buffer[:line_end].split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size: {size_text[:20]!r}") from None
            if size == 0:  # the last chunk, then trailers (usually none) and a blank line
                end = buffer.find(b"\r\n\r\n", line_end)
                if end < 0:
                    break
                self._buffer = buffer[end + 4 :]
                if self._buffer:
                    self._keep_alive = False
                return self._response()
            start = line_end + 2
            if len(buffer) < start + size + 2:
                break
            self._parts.append(buffer[start : start + size])
            buffer = buffer[start + size + 2 :]
        self._buffer = buffer
        return None

    def _response(self) -> HttpResponse:
        assert self._headers is not None
        parts = self._parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        response = HttpResponse(self._status, self._headers, body)
        keep_alive = self._keep_alive
        self._reset_response()
        self._keep_alive = keep_alive
        return response


class LeanTransport:
    """The built-in client: keep-alive connections, at most ``concurrency`` of them in use.

    asyncio only (uvloop included).

    Args:
        headers: Headers sent with every request (the key among them).
        concurrency: Connections kept open at most.
        timeout: Seconds a request may take in all, connecting included, or ``None``.
    """

    name = "built-in"
    handles_timeout = True

    def __init__(
        self, headers: Mapping[str, str], concurrency: int, timeout: float | None = None
    ) -> None:
        self._headers = dict(headers)
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
                    Connection,
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
