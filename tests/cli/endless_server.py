"""A misbehaving HTTP server on 127.0.0.1: it answers 200 with a body that never ends.

Each connection reads one request and then sends body bytes until the client
drops the connection or ``cap`` bytes are out (so a test can never run away).
It counts what it sent, so a test can check that the client stopped reading.
"""

from __future__ import annotations

import socket
import threading
from typing import Final, Literal

Framing = Literal["chunked", "length", "close"]
_PIECE: Final = b"x" * 65536
_HEADS: Final = {
    "chunked": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n",
    "length": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: 10000000000\r\n\r\n",
    "close": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
}


class EndlessServer:
    """Serve endless bodies on an ephemeral port until `close`; ``sent`` counts body bytes."""

    def __init__(self, framing: Framing = "chunked", cap: int = 512 * 1024 * 1024) -> None:
        self.framing = framing
        self.cap = cap
        self.sent = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    got = conn.recv(65536)
                    if not got:
                        return
                    data += got
                head, _, body = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                # Read the whole body: closing with unread bytes would reset the connection.
                while len(body) < length:
                    got = conn.recv(65536)
                    if not got:
                        return
                    body += got
                conn.sendall(_HEADS[self.framing])
                piece = _PIECE
                if self.framing == "chunked":
                    piece = b"%x\r\n%s\r\n" % (len(_PIECE), _PIECE)
                sent = 0
                while sent < self.cap and not self._stop.is_set():
                    conn.sendall(piece)
                    sent += len(_PIECE)
                    with self._lock:
                        self.sent += len(_PIECE)
            except OSError:
                return  # the client dropped the connection: what the tests want

    def close(self) -> None:
        """Stop serving and wait for the connection threads."""
        self._stop.set()
        self._listener.close()
        self._accepting.join(5)
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> EndlessServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
