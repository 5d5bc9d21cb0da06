"""The built-in client on anyio streams, on every backend: framing, reuse, failures, deadlines."""

from __future__ import annotations

import shutil
import socket
import ssl
import struct
import subprocess
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import pytest
from run_helpers import SECRET

from anyfan.openai import classify_exception
from anyfan.transport import ConnectionFailed, RequestTimeout, ResponseTooLarge, open_transport
from anyfan.transport._http11 import ProtocolError
from anyfan.transport._streams import StreamTransport, open_socket

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    Handler = Callable[["Peer"], Awaitable[None]]

pytestmark = pytest.mark.anyio

HEADERS = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}'


class Peer:
    """The server's side of one connection: read whole requests, write replies."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def request(self) -> bytes:
        """One request (head and Content-Length body); b"" when the client closed."""
        while b"\r\n\r\n" not in self.buffer:
            try:
                self.buffer += await self.stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return b""
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(rest) < length:
            rest += await self.stream.receive()
        self.buffer = rest[length:]
        return head + b"\r\n\r\n" + rest[:length]

    async def send(self, data: bytes, piece: int = 3) -> None:
        """Write ``data`` in small pieces: the client must reassemble any split."""
        for i in range(0, len(data), piece):
            await self.stream.send(data[i : i + piece])


class Server:
    """A scripted server: connection ``k`` runs ``handlers[k]`` (the last one repeats)."""

    def __init__(self, *handlers: Handler) -> None:
        self.handlers = handlers
        self.connections = 0
        self.requests: list[bytes] = []

    async def serve(self, stream: anyio.abc.ByteStream) -> None:
        index = min(self.connections, len(self.handlers) - 1)
        self.connections += 1
        async with stream:
            with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
                await self.handlers[index](Peer(stream))


@asynccontextmanager
async def serving(
    *handlers: Handler, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[Server, str]]:
    server = Server(*handlers)
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)
    listener: anyio.abc.Listener[anyio.abc.ByteStream] = tcp
    if tls is not None:
        from anyio.streams.tls import TLSListener

        listener = TLSListener(tcp, tls, standard_compatible=False)
    scheme = "https" if tls else "http"
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, server.serve)
        try:
            yield server, f"{scheme}://127.0.0.1:{port}/v1/chat/completions"
        finally:
            tg.cancel_scope.cancel()


def resetting(*replies: bytes) -> Handler:
    """Answer with ``replies``, then read one more request and reset the connection."""

    async def handle(peer: Peer) -> None:
        for reply in replies:
            await peer.request()
            await peer.send(reply)
        await peer.request()
        raw = peer.stream.extra(anyio.abc.SocketAttribute.raw_socket)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await anyio.aclose_forcefully(peer.stream)  # lingering 0 s: closing sends a reset

    return handle


def replying(*replies: bytes, then_close: bool = False) -> Handler:
    """Answer successive requests with ``replies``; then wait for the client or close."""

    async def handle(peer: Peer) -> None:
        for reply in replies:
            if not await peer.request():
                return
            await peer.send(reply)
        if not then_close:
            await peer.request()  # until the client closes

    return handle


@asynccontextmanager
async def client(
    timeout: float | None = 5.0, concurrency: int = 4
) -> AsyncIterator[StreamTransport]:
    transport = StreamTransport(HEADERS, concurrency, timeout, max_response_bytes=1000)
    try:
        yield transport
    finally:
        await transport.aclose()


async def test_open_transport_picks_it_on_trio(backend_name: str) -> None:
    async with open_transport(HEADERS, 2) as http:
        assert http.name == "built-in"
        assert isinstance(http, StreamTransport) is (backend_name == "trio")
        assert SECRET not in repr(http)


async def test_content_length_responses_reuse_one_connection() -> None:
    async with serving(replying(OK, OK, OK)) as (server, url), client() as http:
        for _ in range(3):
            response = await http.post(url, b'{"q":1}')
            assert (response.status, response.body) == (200, b'{"a":1}')
            assert response.headers["content-type"] == "application/json"
        assert server.connections == 1


async def test_chunked_and_close_framed_bodies() -> None:
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4;ext=1\r\n{"a"\r\n3\r\n:1}\r\n0\r\n\r\n'
    )
    closed = b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"b":2}'
    async with serving(replying(chunked, closed, then_close=True), replying(OK)) as (server, url):
        async with client() as http:
            assert (await http.post(url, b"{}")).body == b'{"a":1}'
            assert (await http.post(url, b"{}")).body == b'{"b":2}'  # framed by the close
            assert (await http.post(url, b"{}")).body == b'{"a":1}'  # on a new connection
        assert server.connections == 2


async def test_a_keep_alive_connection_the_server_closed_is_replaced() -> None:
    # The server answers once, then closes the kept-alive connection while it is idle.
    async with serving(replying(OK, then_close=True)) as (server, url), client() as http:
        assert (await http.post(url, b"{}")).status == 200
        await anyio.wait_all_tasks_blocked()
        assert (await http.post(url, b"{}")).status == 200  # sent again, on a new connection
        assert server.connections == 2


async def test_a_fresh_connection_closed_before_a_response_fails() -> None:
    async def close_at_once(peer: Peer) -> None:
        await peer.request()

    async with serving(close_at_once) as (server, url), client() as http:
        with pytest.raises(ConnectionFailed, match="closed before a response") as info:
            await http.post(url, b"{}")
        assert classify_exception(info.value).retry
        assert server.connections == 1  # not sent twice: the connection was new


@pytest.mark.parametrize(
    ("reply", "error", "problem"),
    [
        (b"SPDY/3 200 OK\r\n\r\n", ProtocolError, "not an HTTP/1.x status line"),
        (b'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{"a"', ConnectionFailed, "middle of"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", ResponseTooLarge, "than 1,000 bytes"),
        (b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 2000, ResponseTooLarge, "than 1,000 bytes"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n",
            ResponseTooLarge,
            "1,000",
        ),
    ],
)
async def test_bad_responses_name_the_problem(reply: bytes, error: type, problem: str) -> None:
    async with serving(replying(reply, then_close=True)) as (_, url), client() as http:
        with pytest.raises(error, match=problem):
            await http.post(url, b"{}")
        assert not http._open  # the connection was dropped


async def test_a_silent_server_times_out_and_the_connection_is_dropped() -> None:
    async def silent(peer: Peer) -> None:
        await peer.request()
        await peer.request()  # never answers; waits for the client to close

    async with serving(silent) as (_, url), client(timeout=0.2) as http:
        with pytest.raises(RequestTimeout, match=r"no complete response within 0\.2 s") as e:
            await http.post(url, b"{}")
        assert classify_exception(e.value).retry
        assert not http._open


async def test_a_closed_client_used_again_still_times_out() -> None:
    async def silent(peer: Peer) -> None:
        await peer.request()
        await peer.request()  # never answers; waits for the client to close

    async with serving(silent) as (_, url), client(timeout=0.2) as http:
        for _ in range(2):
            with anyio.fail_after(10), pytest.raises(RequestTimeout):  # not a hang
                await http.post(url, b"{}")
            await http.aclose()  # stops the watchdog; the next request starts another


async def test_a_response_cut_short_by_the_deadline_times_out() -> None:
    # Framed by the end of the connection: the deadline's shutdown must not pass as that end.
    cut = b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"par'

    async with serving(replying(cut)) as (_, url), client(timeout=0.2) as http:
        with pytest.raises(RequestTimeout, match=r"no complete response within 0\.2 s"):
            await http.post(url, b"{}")
        assert not http._open


async def test_a_request_cancelled_mid_exchange_drops_its_connection() -> None:
    asked = anyio.Event()

    async def silent(peer: Peer) -> None:
        await peer.request()
        asked.set()
        await peer.request()  # never answers; waits for the client to close

    async with serving(silent) as (_, url), client(timeout=None) as http:
        async with anyio.create_task_group() as tg:
            tg.start_soon(http.post, url, b"{}")
            await asked.wait()
            tg.cancel_scope.cancel()
        assert not http._open  # never reused: its response may still come


async def test_a_connection_idle_past_a_deadline_stays_usable() -> None:
    async with serving(replying(OK, OK)) as (server, url), client(timeout=0.1) as http:
        assert (await http.post(url, b"{}")).status == 200
        await anyio.sleep(0.15)  # past the first request's deadline: the watchdog looked
        assert (await http.post(url, b"{}")).status == 200
        assert server.connections == 1  # the idle connection was not expired


async def test_refused_connections_name_the_address() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # nothing listens there now
    async with client(timeout=None) as http:
        with pytest.raises(ConnectionFailed, match=f"cannot connect to 127.0.0.1:{port}"):
            await http.post(f"http://127.0.0.1:{port}/v1", b"{}")
        with pytest.raises(ValueError, match="expected an http:// or https:// URL"):
            await http.post("ftp://127.0.0.1/x", b"{}")


async def test_host_names_are_resolved() -> None:
    async with serving(replying(OK)) as (_, url), client() as http:
        response = await http.post(url.replace("127.0.0.1", "localhost"), b"{}")
        assert response.status == 200
    with pytest.raises(OSError, match=r"[Cc]onnect|refused"):
        await open_socket("localhost", 0)  # every address of the name refuses


async def test_many_requests_in_flight_share_at_most_concurrency_connections() -> None:
    async def answer_all(peer: Peer) -> None:
        while await peer.request():
            await peer.send(OK, piece=len(OK))

    async with serving(answer_all) as (server, url), client(concurrency=4) as http:
        bodies: list[bytes] = []

        async def worker() -> None:
            for _ in range(10):
                bodies.append((await http.post(url, b"{}")).body)

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(worker)
        assert bodies == [b'{"a":1}'] * 40
        assert server.connections <= 4
        assert len(http._open) == server.connections


async def test_idle_connections_are_retired(monkeypatch: pytest.MonkeyPatch) -> None:
    from anyfan.transport import _streams

    async with serving(replying(OK, OK)) as (server, url), client() as http:
        await http.post(url, b"{}")
        monkeypatch.setattr(_streams, "MAX_IDLE", -1.0)  # every idle connection is stale now
        await http.post(url, b"{}")
        assert server.connections == 2
        assert len(http._open) == 1


async def test_the_connection_limit_closes_idle_ones_first() -> None:
    async with (
        serving(replying(OK)) as (first, url_a),
        serving(replying(OK)) as (_, url_b),
        client(concurrency=1) as http,
    ):
        await http.post(url_a, b"{}")
        await http.post(url_b, b"{}")  # the idle connection to url_a is closed to make room
        assert len(http._open) == 1
        assert first.connections == 1


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a cert")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"),
            *("-days", "1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_tls_is_used_verified_and_reused(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    handlers = (
        resetting(OK, OK),
        replying(OK, b"SPDY/3 200 OK\r\n\r\n", then_close=True),
        replying(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"b":2}', then_close=True),
    )
    async with serving(*handlers, tls=server_tls) as (server, url), client() as http:
        # A self-signed certificate is refused: the client verifies like any other.
        with pytest.raises(ConnectionFailed, match="CERTIFICATE_VERIFY_FAILED"):
            await http.post(url, b"{}")
        assert http._ssl is not None
        http._ssl.load_verify_locations(cert)
        http._ssl.check_hostname = False  # the cert names localhost; the URL an address
        assert (await http.post(url, b"{}")).body == b'{"a":1}'
        assert (await http.post(url, b"{}")).body == b'{"a":1}'
        assert server.connections == 1  # kept alive (the refused one never got past TLS)
        # The server resets the kept-alive connection: the request goes again, on a new one.
        assert (await http.post(url, b"{}")).body == b'{"a":1}'
        assert server.connections == 2
        with pytest.raises(ProtocolError, match=r"not an HTTP/1\.x status line"):
            await http.post(url, b"{}")  # garbled on a reused connection: not sent again
        assert (await http.post(url, b"{}")).body == b'{"b":2}'  # framed by the TLS EOF
        assert server.connections == 3


async def test_a_reset_names_the_error_and_a_large_request_is_written_whole() -> None:
    big = b'{"x":"' + b"y" * (8 << 20) + b'"}'  # more than socket buffers hold: waits to write
    async with serving(resetting(), resetting(OK)) as (server, url), client() as http:
        with pytest.raises(ConnectionFailed, match=r"failed before a response \(Connection"):
            await http.post(url, big)  # a new connection: not sent again
        assert server.connections == 1
        assert (await http.post(url, b"{}")).status == 200
        assert (await http.post(url, b"{}")).status == 200  # reset while reused: sent again
        assert server.connections == 3


async def test_tls_handshakes_and_exchanges_time_out(
    certificate: tuple[Path, Path], backend_name: str
) -> None:
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)

    async def silent(peer: Peer) -> None:
        await peer.request()
        await peer.request()  # never answers; waits for the client to close

    async def mute(stream: anyio.abc.ByteStream) -> None:  # accepts, never speaks TLS
        async with stream:
            with suppress(anyio.BrokenResourceError, anyio.EndOfStream):
                await stream.receive()
                await anyio.sleep_forever()

    async with client(timeout=0.2) as http:
        http._ssl = ssl.create_default_context(cafile=str(cert))
        http._ssl.check_hostname = False
        async with serving(silent, tls=server_tls) as (_, url):
            with pytest.raises(RequestTimeout, match=r"no complete response within 0\.2 s"):
                await http.post(url, b"{}")
            assert not http._open
        tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = tcp.extra(anyio.abc.SocketAttribute.local_port)
        async with tcp, anyio.create_task_group() as tg:
            tg.start_soon(tcp.serve, mute)
            with pytest.raises(RequestTimeout, match=r"could not connect within 0\.2 s"):
                await http.post(f"https://127.0.0.1:{port}/v1", b"{}")
            tg.cancel_scope.cancel()
        assert not http._open
