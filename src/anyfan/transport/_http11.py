"""HTTP/1.1 responses, sans-I/O, and one connection on asyncio's protocols.

`ResponseReader` turns received bytes into whole responses and does no I/O,
so every event loop shares it: `Connection` feeds it from asyncio's protocol
callbacks, `anyfan.transport._streams` from anyio byte streams.

Responses are framed by ``Content-Length``, chunked encoding or the end of the
connection; interim (1xx) responses are skipped. Parsing is plain string work
on the head, which arrives in one piece nearly always. Received bytes go into
a ``bytearray`` consumed from the front (as h11's receive buffer does), so a
large body costs time linear in its size, however many reads it takes. A body
larger than ``max_body`` fails the exchange as soon as that is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any, Final

from ._response import (
    DEFAULT_MAX_RESPONSE_BYTES,
    ConnectionFailed,
    HttpResponse,
    RequestTimeout,
    ResponseTooLarge,
)

#: A response head larger than this is refused (real ones are a few KiB).
MAX_HEAD: Final = 1 << 16


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


def _take(buffer: bytearray, start: int, end: int) -> bytes:
    """``buffer[start:end]`` as bytes, copied once."""
    with memoryview(buffer) as view:
        return bytes(view[start:end])


class ResponseReader:
    """Reads the responses of one connection from its bytes, one exchange at a time.

    Feed it what arrives with `feed`; at the end of the connection, call
    `eof_response`. Does no I/O.

    Args:
        max_body: The largest response body accepted, in bytes.
    """

    def __init__(self, max_body: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        self.max_body = max_body
        self._buffer = bytearray()
        self._reset_response()

    def _reset_response(self) -> None:
        self._status = 0
        self._headers: Headers | None = None
        self._length = -1  # -1: chunked or until the connection closes
        self._chunked = False
        self._parts: list[bytes] = []
        self._body_size = 0  # bytes in _parts
        self._keep_alive = True

    def feed(self, data: bytes) -> HttpResponse | None:
        """Take in bytes; return the response once it is whole.

        Raises:
            ProtocolError: The bytes are not an HTTP/1.1 response.
            ResponseTooLarge: The body is larger than ``max_body``.
        """
        self._buffer += data  # amortised O(1): the buffer is consumed from the front
        return self._parse()

    @property
    def started(self) -> bool:
        """Whether any byte of the current response has arrived."""
        return self._headers is not None or bool(self._buffer)

    @property
    def keep_alive(self) -> bool:
        """Whether the last response lets the connection carry another request."""
        return self._keep_alive and not self._buffer

    def eof_response(self, exc: BaseException | None = None) -> HttpResponse:
        """The connection ended: the response it framed, if that is how it was framed.

        Raises:
            ConnectionFailed: The response was not whole; the message says where it stopped.
        """
        if self._headers is not None and self._length < 0 and not self._chunked:
            self._parts.append(bytes(self._buffer))
            self._buffer.clear()
            self._keep_alive = False
            return self._response()
        if self._headers is None:
            reason = "the connection closed before a response"
            if exc is not None:
                reason += f" ({exc!r})"
        else:
            reason = "the connection closed in the middle of the response"
        raise ConnectionFailed(reason)

    # -- parsing ----------------------------------------------------------------------

    def _parse(self) -> HttpResponse | None:
        if self._headers is None and not self._parse_head():
            return None
        if self._chunked:
            return self._parse_chunks()
        buffer = self._buffer
        if self._length < 0:  # until the connection closes
            if len(buffer) > self.max_body:
                raise ResponseTooLarge(self.max_body)
            return None
        if len(buffer) < self._length:
            return None
        length = self._length
        self._parts.append(_take(buffer, 0, length))
        del buffer[:length]
        if buffer:  # more than was asked for: the connection is out of step
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
            del buffer[: end + 4]
            version, _, rest = lines[0].partition(" ")
            code = rest[:3]
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:40]!r}")
            status = int(code)
            if 100 <= status < 200:  # an interim response (100 Continue, 103 Early Hints)
                continue
            break
        fields: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise ProtocolError(f"malformed header line: {line[:40]!r}")
            name = name.lower()  # no space may come before the colon
            value = value.strip()
            if name in fields:
                fields[name] += ", " + value
            else:
                fields[name] = value
        self._status, self._headers = status, Headers(fields)
        connection = fields.get("connection", "").lower()
        self._keep_alive = (
            "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        )
        if status in (204, 304):
            self._length = 0
        elif "chunked" in fields.get("transfer-encoding", "").lower():
            self._chunked = True
        elif (length := fields.get("content-length")) is not None:
            if not length.isdigit():
                raise ProtocolError(f"bad Content-Length: {length[:20]!r}")
            self._length = int(length)
            if self._length > self.max_body:
                raise ResponseTooLarge(self.max_body)
        else:
            self._keep_alive = False
        return True

    def _parse_chunks(self) -> HttpResponse | None:
        buffer = self._buffer
        pos = 0  # what is before it is parsed; cut off once, on the way out
        try:
            while True:
                line_end = buffer.find(b"\r\n", pos)
                if line_end < 0:
                    if len(buffer) - pos > MAX_HEAD:
                        raise ProtocolError("chunk size line too long")
                    return None
                size_text = bytes(buffer[pos:line_end]).split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size: {size_text[:20]!r}") from None
                if size == 0:  # the last chunk, then trailers (usually none) and a blank line
                    end = buffer.find(b"\r\n\r\n", line_end)
                    if end < 0:
                        return None
                    pos = end + 4
                    if len(buffer) > pos:
                        self._keep_alive = False
                    return self._response()
                if self._body_size + size > self.max_body:
                    raise ResponseTooLarge(self.max_body)
                start = line_end + 2
                if len(buffer) < start + size + 2:
                    return None
                self._parts.append(_take(buffer, start, start + size))
                self._body_size += size
                pos = start + size + 2
        finally:
            del buffer[:pos]

    def _response(self) -> HttpResponse:
        assert self._headers is not None
        parts = self._parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        response = HttpResponse(self._status, self._headers, body)
        keep_alive = self._keep_alive
        self._reset_response()
        self._keep_alive = keep_alive
        return response


class Connection(ResponseReader, asyncio.Protocol):
    """One keep-alive connection; one exchange at a time.

    Args:
        max_body: The largest response body accepted, in bytes.
    """

    transport: asyncio.Transport

    def __init__(self, max_body: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        super().__init__(max_body)
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[HttpResponse] | None = None

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
        self._buffer += data  # amortised O(1): the buffer is consumed from the front
        try:
            response = self._parse()
        except (ProtocolError, ResponseTooLarge) as exc:
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
        try:
            response = self.eof_response(exc)
        except ConnectionFailed as failed:
            self._fail(failed)
            return
        waiter, self._waiter = self._waiter, None
        if not waiter.done():
            waiter.set_result(response)

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
        return (
            not self.closed
            and self._keep_alive
            and self._waiter is None
            and not self._buffer
            and not self.transport.is_closing()
        )

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
