"""The built-in HTTP client on anyio byte streams: the same client on every event loop.

It shares `ResponseReader` (the sans-I/O response parser) and `Target` (the
request head, built once per URL) with the asyncio client in `._lean`, and
keeps the same pool: keep-alive connections reused last-in first-out, retired
after `MAX_IDLE` seconds idle, at most ``concurrency`` open. It connects with
`anyio.connect_tcp` and wraps https in anyio's TLS stream. Under asyncio the
protocol-based client stays the default (it skips a stream layer); this one
runs under trio, where it replaces httpx.

Plain http skips the stream layers: the connection owns a non-blocking socket
and waits with `anyio.wait_readable` / `anyio.wait_writable` (on trio, trio's
own ``wait_readable``, the same call without anyio's lookup of the backend),
then reads what is there. On trio that is one wait and one ``recv`` per response where a
stream would first try the read, fail and then wait. https goes through
`anyio.connect_tcp` and anyio's TLS stream.

Deadlines cost no cancel scope per request. On trio a scope with a deadline
costs about 10-15 µs per request, a third of the client's CPU; instead each
exchange notes its deadline on its connection, and one watchdog task per
transport (spawned beside the caller's tasks, as asyncio's client sets a timer)
sleeps until the soonest one and shuts down the socket of an exchange past
it. The exchange then ends at once, and the request fails with
`RequestTimeout`. Connecting, rare, still runs in a cancel scope.

A connection sees that the server closed an idle connection only when it reads
from it, after the next request was written. So a request that finds its
reused connection closed before any byte of a response came back is sent once
more on a new connection: the server closed that connection without reading
the request (as urllib3 and httpcore do, for the same reason).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import socket
import ssl
from collections import deque
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from .._core import loop_clock
from ._http11 import ResponseReader
from ._lean import MAX_IDLE, Target
from ._open import running_backend
from ._response import DEFAULT_MAX_RESPONSE_BYTES, ConnectionFailed, RequestTimeout

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from ._response import HttpResponse

#: Bytes asked for per read: a small response arrives in one.
READ_SIZE: Final = 65536
#: The deadline of a connection with no exchange in progress.
NO_DEADLINE: Final = math.inf
#: Errors of a stream that mean the connection is gone.
_GONE: Final = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


def _failed(reader: ResponseReader, exc: BaseException) -> ConnectionFailed:
    where = "before a response" if not reader.started else "in the middle of the response"
    return ConnectionFailed(f"the connection failed {where} ({exc!r})")


def _shut(fileno: int) -> None:
    """End both directions of a socket: a wait on it wakes, and its reads see the end.

    Through a socket object of its own on the same descriptor: the socket an
    event loop's transport shows (uvloop's) may refuse ``shutdown``.
    """
    alias = socket.socket(fileno=fileno)
    try:
        alias.shutdown(socket.SHUT_RDWR)
    except OSError:  # pragma: no cover - the server reset it first
        pass
    finally:
        alias.detach()  # the descriptor stays open: its owner closes it


class SocketConnection(ResponseReader):
    """One keep-alive plain-http connection on a non-blocking socket; one exchange at a time."""

    def __init__(
        self,
        sock: socket.socket,
        max_body: int,
        wait_readable: Callable[[socket.socket], Awaitable[None]] = anyio.wait_readable,
    ) -> None:
        super().__init__(max_body)
        self.sock = sock
        self.wait_readable = wait_readable
        self.idle_since = 0.0
        self.reused = False
        self.due = NO_DEADLINE  # the deadline of the exchange in progress
        self.expired = False

    def expire(self) -> None:
        """Give up on the exchange in progress: its deadline passed."""
        self.expired = True
        self.due = NO_DEADLINE
        _shut(self.sock.fileno())

    async def exchange(self, data: bytes) -> HttpResponse:
        """Write a request and read its whole response.

        Raises:
            ConnectionFailed: No complete response; the message says why.
            ResponseTooLarge: The body is larger than ``max_body``.
        """
        sock, wait_readable = self.sock, self.wait_readable
        try:
            sent = _send(sock, data)
            while sent < len(data):
                await anyio.wait_writable(sock)
                sent += _send(sock, data[sent:])
            while True:
                await wait_readable(sock)
                try:
                    chunk = sock.recv(READ_SIZE)
                except BlockingIOError:  # pragma: no cover - woken with nothing to read
                    continue
                if not chunk:
                    return self.eof_response()
                response = self.feed(chunk)
                if response is not None:
                    return response
        except ConnectionFailed:  # an OSError too, but ours: let it through as it is
            raise
        except OSError as exc:
            raise _failed(self, exc) from None


def _send(sock: socket.socket, data: bytes) -> int:
    try:
        return sock.send(data)
    except BlockingIOError:  # pragma: no cover - called when the socket is writable
        return 0


async def open_socket(host: str, port: int) -> socket.socket:
    """A connected non-blocking TCP socket, trying each address ``host`` has in turn.

    Raises:
        OSError: No address could be connected to (the last address's error).
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [(family, address) for family, _, _, _, address in infos]
    else:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        addresses = [(family, (host, port))]
    error: OSError = OSError(f"no address for {host}")
    for family, address in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                sock.connect(address)
            except BlockingIOError:
                await anyio.wait_writable(sock)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise OSError(code, os.strerror(code)) from None
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:  # pragma: no cover - cancelled mid-connect: loopback connects at once
            sock.close()
            raise
        return sock
    raise error


class StreamConnection(ResponseReader):
    """One keep-alive connection over an anyio byte stream (TLS); one exchange at a time."""

    def __init__(self, stream: anyio.abc.ByteStream, max_body: int) -> None:
        super().__init__(max_body)
        self.stream = stream
        self.idle_since = 0.0
        self.reused = False
        self.due = NO_DEADLINE  # the deadline of the exchange in progress
        self.expired = False

    def expire(self) -> None:
        """Give up on the exchange in progress: its deadline passed."""
        self.expired = True
        self.due = NO_DEADLINE
        _shut(self.stream.extra(anyio.abc.SocketAttribute.raw_socket).fileno())

    async def aclose(self) -> None:
        """Close the stream, with no TLS goodbye (it is being dropped)."""
        await anyio.aclose_forcefully(self.stream)

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
        except ConnectionFailed:
            raise
        except _GONE as exc:
            raise _failed(self, exc) from None


Connection: TypeAlias = "SocketConnection | StreamConnection"


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
        self._idle: dict[tuple[str, str, int], deque[Connection]] = {}
        self._open: set[Connection] = set()
        self._stale: list[Connection] = []  # retired by _reuse, to be closed
        self._ssl: ssl.SSLContext | None = None
        self._watchdog: anyio.CancelScope | None = None
        self._watchdog_task: Any = None  # asyncio keeps only weak references to tasks
        self._nap = anyio.CancelScope()  # the watchdog's sleep
        self._wake = -math.inf  # when the watchdog wakes next (before it ever ran: at once)
        # anyio looks the backend up on every call: 0.35-0.5 µs each, four per request,
        # about 5% of `anyfan run`'s CPU on trio. The engine's clock and trio's own
        # wait_readable are the same calls without that lookup.
        self._now: Callable[[], float] = loop_clock()
        self._wait_readable: Callable[[socket.socket], Awaitable[None]] = anyio.wait_readable
        if running_backend() == "trio":
            import trio

            self._wait_readable = trio.lowlevel.wait_readable

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
            deadline = NO_DEADLINE
        else:
            if self._watchdog is None:
                self._start_watchdog()
            deadline = self._now() + self._timeout
        while True:  # in one coroutine: each frame between a task and its wait costs on resume
            connection = self._reuse(target.origin)
            if self._stale:
                await self._close_stale()
            if connection is None:
                connection = await self._connect(target, deadline)
            connection.due = deadline
            if deadline < self._wake:  # the watchdog looked while this connected: wake it
                self._nap.cancel()
            try:
                response = await connection.exchange(data)
            except Exception as exc:
                connection.due = NO_DEADLINE
                await self._close(connection)
                if connection.expired:
                    raise self._timed_out() from None
                if connection.reused and not connection.started and type(exc) is ConnectionFailed:
                    continue  # closed by the server while idle, the request unread
                raise
            except BaseException:  # cancelled: never reuse it
                connection.due = NO_DEADLINE
                await self._close(connection)
                raise
            connection.due = NO_DEADLINE
            if connection.expired:  # whole, but only after the socket was shut down
                await self._close(connection)
                raise self._timed_out()
            if connection.keep_alive:
                connection.idle_since = self._now()
                connection.reused = True
                self._idle[target.origin].append(connection)
            else:
                await self._close(connection)
            return response

    def _timed_out(self) -> RequestTimeout:
        return RequestTimeout(f"no complete response within {self._timeout:g} s")

    def _start_watchdog(self) -> None:
        """Start the task that expires exchanges past their deadline (once)."""
        self._watchdog = scope = anyio.CancelScope()
        # Beside the caller's tasks, not under them: anyio has no such task, and
        # a task group around the caller's code would wrap its exceptions in groups.
        if running_backend() == "trio":
            import trio

            trio.lowlevel.spawn_system_task(self._watch, scope, name="anyfan HTTP deadlines")
        else:
            self._watchdog_task = asyncio.get_running_loop().create_task(self._watch(scope))

    async def _watch(self, scope: anyio.CancelScope) -> None:
        """Expire every exchange past its deadline; sleep until the soonest one.

        A request that starts while this sleeps is due at least ``timeout``
        later, never before the wake-up; one that connected while this looked
        at the connections may be due sooner, and wakes it.
        """
        assert self._timeout is not None
        with scope:
            while True:
                now = self._now()
                soonest = now + self._timeout
                for connection in self._open:
                    due = connection.due
                    if due <= now:
                        connection.expire()
                    elif due < soonest:
                        soonest = due
                self._wake = soonest
                with anyio.CancelScope() as self._nap:
                    await anyio.sleep_until(soonest)

    def _reuse(self, origin: tuple[str, str, int]) -> Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            if idle is None:
                self._idle[origin] = deque()
            return None
        oldest_allowed = self._now() - MAX_IDLE
        while idle and idle[0].idle_since < oldest_allowed:  # the oldest sit at the left
            self._stale.append(idle.popleft())
        return idle.pop() if idle else None  # the most recently used: least likely dropped

    async def _connect(self, target: Target, deadline: float) -> Connection:
        if len(self._open) >= self._limit:
            await self._close_idle()
        with anyio.CancelScope(deadline=deadline):
            connection = await self._open_connection(target)
            self._open.add(connection)
            return connection
        raise RequestTimeout(f"could not connect within {self._timeout:g} s")

    async def _open_connection(self, target: Target) -> Connection:
        try:
            if not target.tls:
                sock = await open_socket(target.host, target.port)
                return SocketConnection(sock, self._max_body, self._wait_readable)
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tcp = await anyio.connect_tcp(target.host, target.port)
            try:
                stream = await TLSStream.wrap(
                    tcp,
                    hostname=target.host,
                    ssl_context=self._ssl,
                    standard_compatible=False,  # servers often close without close_notify
                )
            except BaseException:  # refused certificate, cancelled: close the socket
                await anyio.aclose_forcefully(tcp)
                raise
            return StreamConnection(stream, self._max_body)
        except (OSError, ssl.SSLError, anyio.BrokenResourceError) as exc:
            raise ConnectionFailed(
                f"cannot connect to {target.host}:{target.port}: {exc}"
            ) from None

    async def _close(self, connection: Connection) -> None:
        """Drop a connection; shielded, as it runs when a deadline passed."""
        self._open.discard(connection)
        if isinstance(connection, SocketConnection):
            connection.sock.close()  # no checkpoint: cheap when many are dropped
            return
        with anyio.CancelScope(shield=True):
            await connection.aclose()

    async def _close_stale(self) -> None:
        while self._stale:
            await self._close(self._stale.pop())

    async def _close_idle(self) -> None:
        for idle in self._idle.values():
            while idle:
                await self._close(idle.popleft())

    async def aclose(self) -> None:
        """Close every connection; stop the watchdog."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = self._watchdog_task = None  # a later request starts another
        for connection in list(self._open):
            await self._close(connection)
        self._idle.clear()
