"""One connection to Redis on the running event loop: RESP by hiredis, bytes by anyio.

hiredis (the Redis project's own C parser) packs commands and parses replies;
anyio's streams carry the bytes, so one code path serves asyncio, uvloop and
trio alike. Commands on a connection run one at a time, each to its reply. A
command interrupted half way (cancelled, or the socket failed) leaves the
connection out of step with the server, so it is closed and never reused.
"""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
import anyio.abc
import hiredis

from ._url import Address

#: Bytes read from the socket at a time.
_CHUNK = 65536


class ConnectionLost(Exception):
    """The connection failed or was closed; the caller may reconnect."""


class Connection:
    """A connection to one Redis server, used from the event loop that opened it."""

    __slots__ = ("_broken", "_lock", "_reader", "_stream")

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream
        self._reader = hiredis.Reader()
        self._lock = anyio.Lock()
        self._broken = False

    @property
    def broken(self) -> bool:
        """Whether the connection can no longer be used."""
        return self._broken

    @classmethod
    async def open(cls, address: Address, timeout: float) -> Connection:
        """Connect, log in and select the database.

        Raises:
            ConnectionLost: If the server cannot be reached in ``timeout`` seconds.
            PermissionError: If it rejects the credentials.
        """
        try:
            with anyio.fail_after(timeout):
                stream: anyio.abc.ByteStream
                if address.scheme == "unix":
                    stream = await anyio.connect_unix(address.path)
                elif address.scheme == "rediss":
                    stream = await anyio.connect_tcp(
                        address.host, address.port, tls=True, tls_standard_compatible=False
                    )
                else:
                    stream = await anyio.connect_tcp(address.host, address.port)
                connection = cls(stream)
                try:
                    if address.password is not None:
                        login = [address.username] if address.username else []
                        reply = await connection.call("AUTH", *login, address.password)
                        if isinstance(reply, hiredis.ReplyError):
                            code = str(reply).split()[0]  # WRONGPASS, NOAUTH: never the secret
                            raise PermissionError(f"Redis refused the login: {code}")
                    if address.db:
                        reply = await connection.call("SELECT", str(address.db))
                        if isinstance(reply, hiredis.ReplyError):
                            raise ConnectionLost(f"Redis refused database {address.db}: {reply}")
                except BaseException:
                    await connection.aclose()
                    raise
                return connection
        except TimeoutError:
            raise ConnectionLost(f"no answer within {timeout:g}s") from None
        except OSError as exc:
            if isinstance(exc, PermissionError):
                raise
            raise ConnectionLost(f"{type(exc).__name__}: {exc}") from exc

    async def call(self, *args: str | bytes) -> Any:
        """Send one command and return its reply (a `hiredis.ReplyError` for an error reply).

        Raises:
            ConnectionLost: If the connection fails or is closed on the way.
        """
        if self._broken:
            raise ConnectionLost("connection closed")
        async with self._lock:
            done = False
            try:
                await self._stream.send(hiredis.pack_command(args))  # type: ignore[arg-type]
                while True:
                    reply = self._reader.gets()
                    if reply is not False:
                        done = True
                        return reply
                    data = await self._stream.receive(_CHUNK)
                    self._reader.feed(data)
            except (
                OSError,
                anyio.EndOfStream,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
            ) as exc:
                raise ConnectionLost(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
            finally:
                if not done:
                    self._broken = True
                    await _close_quietly(self._stream)

    async def aclose(self) -> None:
        """Close the connection."""
        self._broken = True
        await _close_quietly(self._stream)


async def _close_quietly(stream: anyio.abc.ByteStream) -> None:
    with anyio.CancelScope(shield=True):
        with contextlib.suppress(Exception):
            await anyio.aclose_forcefully(stream)
