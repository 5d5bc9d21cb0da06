"""The built-in HTTP/1.1 client against scripted servers: framing, reuse, failures, deadlines."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import ssl
import subprocess
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest
from run_helpers import SECRET

from anyfan.openai import classify_exception
from anyfan.transport import ConnectionFailed, RequestTimeout, _http11, _lean
from anyfan.transport._http11 import Connection, Headers, ProtocolError
from anyfan.transport._lean import LeanTransport, Target

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

BACKENDS = [pytest.param(("asyncio", {}), id="asyncio")]
if importlib.util.find_spec("uvloop"):
    BACKENDS.append(pytest.param(("asyncio", {"use_uvloop": True}), id="asyncio+uvloop"))

pytestmark = pytest.mark.anyio

HEADERS = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}'


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """The built-in client is asyncio's (uvloop included): no trio here."""
    return request.param


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request's head and body (framed by Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


class Server:
    """A scripted server: each connection runs ``handler``; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.heads: list[bytes] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(
    handler: Handler, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[Server, str]]:
    server = Server(handler)
    listener = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=tls)
    port = listener.sockets[0].getsockname()[1]
    scheme = "https" if tls else "http"
    try:
        yield server, f"{scheme}://127.0.0.1:{port}/v1/chat/completions"
    finally:
        listener.close()


def replying(*replies: bytes, then_close: bool = False) -> Handler:
    """A handler that answers successive requests with ``replies``, in pieces of 3 bytes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for reply in replies:
            await read_request(reader)
            for i in range(0, len(reply), 3):  # the client must reassemble any split
                writer.write(reply[i : i + 3])
                await writer.drain()
        if not then_close:
            await reader.read()  # until the client closes

    return handle


def per_connection(*handlers: Handler) -> Handler:
    """The first connection runs the first handler, and so on; later ones are closed."""
    seen = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal seen
        seen += 1
        if seen <= len(handlers):
            await handlers[seen - 1](reader, writer)

    return handle


@asynccontextmanager
async def client(timeout: float | None = 5.0, concurrency: int = 4) -> AsyncIterator[LeanTransport]:
    transport = LeanTransport(HEADERS, concurrency, timeout)
    try:
        yield transport
    finally:
        await transport.aclose()


async def test_a_content_length_response_and_reuse_of_the_connection() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, body = await read_request(reader)
            server.heads.append(head)
            assert body == b'{"q":1}'
            writer.write(OK)

    async with serving(handle) as (server, url), client() as http:
        first = await http.post(url, b'{"q":1}')
        second = await http.post(url, b'{"q":1}')
    assert (first.status, first.body) == (200, b'{"a":1}')
    assert second.body == b'{"a":1}'
    assert first.headers["CONTENT-TYPE"] == "application/json"
    assert server.connections == 1
    head = server.heads[0].decode()
    assert head.startswith("POST /v1/chat/completions HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{url.split(':')[2].split('/')[0]}\r\n" in head
    assert f"Authorization: Bearer {SECRET}\r\n" in head
    assert "Content-Length: 7\r\n" in head
    assert SECRET not in repr(http)


async def test_chunked_bodies_interim_responses_and_empty_ones() -> None:
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nx-a: 2\r\n\r\n"
        b'3;ext=1\r\n{"a\r\n4\r\n":1}\r\n0\r\nTrailer: yes\r\n\r\n'
    )
    empty = b"HTTP/1.1 204 No Content\r\n\r\n"
    async with serving(replying(chunked, empty, OK)) as (server, url), client() as http:
        first = await http.post(url, b"{}")
        second = await http.post(url, b"{}")
        third = await http.post(url, b"{}")
    assert first.body == b'{"a":1}'
    assert first.headers.get("x-a") == "1, 2"
    assert "X-A" in first.headers
    assert 1 not in first.headers
    assert (second.status, second.body) == (204, b"")
    assert third.body == b'{"a":1}'
    assert server.connections == 1


async def test_a_response_framed_by_the_end_of_the_connection() -> None:
    legacy = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello, world"
    handler = per_connection(replying(legacy, then_close=True))
    async with serving(handler) as (server, url), client() as http:
        response = await http.post(url, b"{}")
        again = http.post(url, b"{}")
        with pytest.raises(ConnectionFailed, match="closed before a response"):
            await again
    assert response.body == b"hello, world"
    assert server.connections == 2  # an HTTP/1.0 connection is not kept


async def test_connection_close_and_extra_bytes_end_reuse() -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    extra = OK + b"garbage"
    chunked_extra = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nmore"
    for reply in (closing, extra, chunked_extra):
        handler = per_connection(replying(reply), replying(OK))
        async with serving(handler) as (server, url), client() as http:
            await http.post(url, b"{}")
            second = await http.post(url, b"{}")
        assert second.body == b'{"a":1}'
        assert server.connections == 2  # the first connection was not reused


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (b"SPDY/3 200 OK\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 2xx OK\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * (_http11.MAX_HEAD + 10), "response head too large"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"1" * (_http11.MAX_HEAD + 10),
            "chunk size line too long",
        ),
    ],
)
async def test_garbled_responses_fail_the_request(reply: bytes, problem: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply)
        await reader.read()

    async with serving(handle) as (_, url), client() as http:
        with pytest.raises(ProtocolError, match=problem) as info:
            await http.post(url, b"{}")
    assert isinstance(info.value, ConnectionFailed)
    assert classify_exception(info.value).retry


async def test_a_connection_cut_mid_body_fails_and_is_retryable() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK[:-3])
        await writer.drain()

    async with serving(handle) as (_, url), client() as http:
        with pytest.raises(ConnectionFailed, match="in the middle of the response") as info:
            await http.post(url, b"{}")
    assert classify_exception(info.value).retry


async def test_a_reset_before_any_response_names_the_error() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.transport.abort()

    async with serving(handle) as (_, url), client() as http:
        with pytest.raises(ConnectionFailed):
            await http.post(url, b"{}")


class FakeTransport:
    """Just enough of an asyncio transport to drive a `Connection` by hand."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False

    def get_extra_info(self, name: str) -> Any:
        return None

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted


def test_unexpected_bytes_on_an_idle_connection_drop_it() -> None:
    connection = Connection()
    transport = FakeTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    assert connection.reusable
    connection.data_received(b"surprise")
    assert transport.aborted
    assert not connection.reusable


async def test_a_cancelled_exchange_ignores_what_arrives_after() -> None:
    connection = Connection()
    transport = FakeTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    waiter = connection.send(b"request")
    assert transport.written == [b"request"]
    waiter.cancel()
    connection.data_received(OK)  # a whole response for a waiter that is gone
    assert not transport.aborted
    waiter = connection.send(b"again")
    waiter.cancel()
    connection.data_received(b"HTTP/1.1 200 OK\r\nX: y\r\n\r\nno length")
    connection.connection_lost(None)  # ends a close-framed body nobody waits for
    assert connection.closed
    waiter = connection.send(b"third")
    waiter.cancel()
    connection.connection_lost(ConnectionResetError())
    assert waiter.cancelled()


async def test_a_response_fed_one_byte_at_a_time() -> None:
    connection = Connection()
    connection.connection_made(FakeTransport())  # type: ignore[arg-type]
    waiter = connection.send(b"request")
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"
    )
    for i in range(len(reply)):
        assert not waiter.done()
        connection.data_received(reply[i : i + 1])
    assert waiter.result().body == b"hello, world"
    assert connection.reusable


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    handler = per_connection(replying(OK, then_close=True), replying(OK))
    async with serving(handler) as (server, url), client(timeout=None) as http:
        await http.post(url, b"{}")
        (idle,) = http._idle[next(iter(http._idle))]
        for _ in range(10_000):  # until the server's close reaches the client
            if idle.closed:
                break
            await asyncio.sleep(0.001)
        second = await http.post(url, b"{}")
    assert second.body == b'{"a":1}'
    assert server.connections == 2


async def test_deadlines_and_refusals() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with serving(silent) as (server, url), client(timeout=0.05) as http:
        with pytest.raises(RequestTimeout, match=r"no complete response within 0\.05 s"):
            await http.post(url, b"{}")
    assert server.connections == 1

    async with serving(silent) as (_, url):
        refused = url
    async with client() as http:
        with pytest.raises(ConnectionFailed, match=r"cannot connect to 127\.0\.0\.1:"):
            await http.post(refused, b"{}")


async def test_a_slow_connect_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    async with client(timeout=0.05) as http:

        async def never(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(10)

        monkeypatch.setattr(http._loop, "create_connection", never)
        with pytest.raises(RequestTimeout, match=r"could not connect within 0\.05 s"):
            await http.post("http://127.0.0.1:9/v1/x", b"{}")


async def test_no_timeout_and_a_cancelled_exchange() -> None:
    gate = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        gate.set()
        await reader.read()

    async with serving(handle) as (server, url), client(timeout=None) as http:
        task = asyncio.ensure_future(http.post(url, b"{}"))
        await gate.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not http._open  # a connection cut mid-exchange is never reused
    assert server.connections == 1


async def test_idle_connections_are_retired(monkeypatch: pytest.MonkeyPatch) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(OK)

    monkeypatch.setattr(_lean, "MAX_IDLE", 0.0)
    async with serving(handle) as (server, url), client() as http:
        await http.post(url, b"{}")
        await asyncio.sleep(0.01)
        await http.post(url, b"{}")  # the first connection sat too long: a new one
    assert server.connections == 2


async def test_the_connection_limit_closes_idle_ones_first() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(OK)

    async with (
        serving(handle) as (first, url_a),
        serving(handle) as (second, url_b),
        client(concurrency=1) as http,
    ):
        await http.post(url_a, b"{}")
        await http.post(url_b, b"{}")
        assert len(http._open) == 1
        await http.post(url_a, b"{}")
    assert (first.connections, second.connections) == (2, 1)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a cert")
async def test_tls_is_used_and_verified(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"),
            *("-days", "1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    async with serving(replying(OK), tls=server_tls) as (_, url), client() as http:
        # A self-signed certificate is refused: the client verifies like any other.
        with pytest.raises(ConnectionFailed, match="CERTIFICATE_VERIFY_FAILED"):
            await http.post(url, b"{}")
        assert http._ssl is not None
        http._ssl.load_verify_locations(cert)
        http._ssl.check_hostname = False  # the cert names localhost; the URL an address
        response = await http.post(url, b"{}")
    assert response.body == b'{"a":1}'


def test_targets_and_headers() -> None:
    target = Target("https://[::1]/v1/x?y=1", HEADERS)
    assert target.tls
    assert target.origin == ("https", "::1", 443)
    assert target.head.startswith(b"POST /v1/x?y=1 HTTP/1.1\r\nHost: [::1]\r\n")
    assert target.head.endswith(b"\r\nContent-Length: ")
    assert SECRET not in repr(target)
    assert Target("http://h:8080", {}).head.startswith(b"POST / HTTP/1.1\r\nHost: h:8080\r\n")
    assert b"Host: h\r\n" in Target("http://h:80/", {}).head
    with pytest.raises(ValueError, match="expected an http:// or https:// URL"):
        Target("ftp://h/x", {})
    headers = Headers({"retry-after-ms": "10"})
    assert headers.get("Retry-After-Ms") == "10"
    assert headers.get("missing", "d") == "d"
    assert headers["RETRY-AFTER-MS"] == "10"
