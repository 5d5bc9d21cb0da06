"""`RedisStore`: rate-limit state in Redis, shared by every process that uses the same quota."""

from __future__ import annotations

import functools
import re
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

import anyio
import hiredis

from .._core import (
    QuotaSpec,
    StoredCharge,
    StoreUnavailable,
    check_number,
    loop_token,
)
from . import _script
from ._connection import Connection, ConnectionLost
from ._url import parse_url

#: Error replies that mean "not now" (the server is starting, failing over, busy), alone
#: or inside a script's error.
_TRANSIENT = re.compile(r"\b(LOADING|BUSY|TRYAGAIN|MASTERDOWN|READONLY|CLUSTERDOWN)\b")
#: Backoff between reconnection attempts during an outage: first, and most.
_FIRST_BACKOFF = 0.05
_MAX_BACKOFF = 1.0


class RedisStore:
    """A connection to Redis (or Valkey) keeping `anyfan.Rate` quotas shared across processes.

    Give it to every Rate that should share a quota::

        store = anyfan.redis.RedisStore("redis://localhost:6379/0")
        rpm = anyfan.Rate(500, per=60, store=store, key="openai-rpm")

    Every process (on any host) that builds a Rate with the same store, key,
    limit and per shares one quota, with the local Rate's guarantees across
    all of them. Each admission is one round trip running a server-side
    script on the Redis server's clock; a call that must wait then sleeps
    locally, costing Redis nothing until its turn.

    The store connects lazily, on first use, one connection per event loop
    (asyncio, uvloop or trio; the blocking facade's loop included). If Redis
    cannot be reached the first time, `anyfan.StoreUnavailable` is raised at
    once. If it is lost later, calls wait while the store reconnects with
    backoff for up to ``reconnect_for`` seconds, then fail with
    `StoreUnavailable`; once Redis is back, calls go on.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for
            TLS, or ``unix:///path/to/socket``.
        prefix: Put before every key, so that anyfan's keys stand apart.
        connect_timeout: Seconds one connection attempt may take.
        reconnect_for: Seconds to keep reconnecting during an outage before
            calls fail with `StoreUnavailable`.

    Raises:
        TypeError, ValueError: If an argument is malformed (the message never
            shows a password).
    """

    __slots__ = (
        "__weakref__",
        "_address",
        "_connect_timeout",
        "_connections",
        "_ever_connected",
        "_lock",
        "_outage",
        "_prefix",
        "_reconnect_for",
        "_url",
        "round_trips",
    )

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "anyfan:",
        connect_timeout: float = 5.0,
        reconnect_for: float = 10.0,
    ) -> None:
        self._address = parse_url(url)
        self._url = url  # as given, for pickling; never shown (see `url`)
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a string, got {prefix!r}")
        self._prefix = prefix
        self._connect_timeout = check_number(connect_timeout, "connect_timeout")
        self._reconnect_for = check_number(reconnect_for, "reconnect_for", positive=False)
        # One connection per event loop, forgotten with the loop.
        self._connections: weakref.WeakKeyDictionary[Any, _Slot] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._ever_connected = False
        # When the current outage began (time.monotonic), or None while Redis answers.
        self._outage: float | None = None
        #: Commands sent to Redis so far (for benchmarks and tests).
        self.round_trips = 0

    def __repr__(self) -> str:
        return f"RedisStore({self._address.redacted!r}, prefix={self._prefix!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as its settings (for multiprocessing, Dask): connections stay behind.
        rebuild = functools.partial(
            RedisStore,
            prefix=self._prefix,
            connect_timeout=self._connect_timeout,
            reconnect_for=self._reconnect_for,
        )
        return (rebuild, (self._url,))

    @property
    def url(self) -> str:
        """The server's URL, with any password replaced by ``***``."""
        return self._address.redacted

    @property
    def prefix(self) -> str:
        """What every key starts with."""
        return self._prefix

    # -- the RateStore interface ---------------------------------------------

    async def reserve(self, specs: Sequence[QuotaSpec]) -> tuple[float, list[StoredCharge]]:
        """Charge every quota in one round trip; return the wait and the charges."""
        keys, argv = _script.reserve_args(self._prefix, specs)
        reply = await self._eval(_script.RESERVE, _script.RESERVE_SHA, keys, argv, specs[0])
        return _script.read_reserve(reply, specs)

    async def settle(self, charge: StoredCharge, used: float) -> float:
        """Settle one charge with the units really used; return the units given back."""
        keys, argv = _script.settle_args(self._prefix, charge, used)
        reply = await self._eval(_script.SETTLE, _script.SETTLE_SHA, keys, argv, charge.spec)
        return float(reply)

    # -- plumbing ------------------------------------------------------------

    async def ping(self) -> None:
        """Check that Redis answers (connecting if needed).

        Raises:
            StoreUnavailable: If it does not.
        """
        await self._command("PING")

    async def aclose(self) -> None:
        """Close this event loop's connection (a later call opens a new one)."""
        with self._lock:
            slot = self._connections.pop(loop_token(), None)
        if slot is not None and slot.connection is not None:
            await slot.connection.aclose()

    async def __aenter__(self) -> RedisStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _eval(
        self, script: str, sha: str, keys: list[str], argv: list[str], spec: QuotaSpec
    ) -> Any:
        reply = await self._command("EVALSHA", sha, str(len(keys)), *keys, *argv)
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            # A new or restarted server: send the script itself (it is cached from then on).
            reply = await self._command("EVAL", script, str(len(keys)), *keys, *argv)
        if isinstance(reply, hiredis.ReplyError):
            message = str(reply)
            if _script.MISMATCH in message:
                raise ValueError(_script.mismatch_message(message.split(_script.MISMATCH)[1], spec))
            raise RuntimeError(f"Redis at {self.url} refused anyfan's script: {message}")
        return reply

    async def _command(self, *args: str) -> Any:
        """Run one command, reconnecting with backoff during an outage."""
        backoff = _FIRST_BACKOFF
        while True:
            try:
                connection = await self._connection()
                self.round_trips += 1
                reply = await connection.call(*args)
            except ConnectionLost as exc:
                failure: str = str(exc)
            else:
                if isinstance(reply, hiredis.ReplyError) and _TRANSIENT.search(str(reply)):
                    failure = str(reply).split("\n", 1)[0]
                else:
                    self._outage = None
                    return reply
            now = time.monotonic()
            if not self._ever_connected:
                raise StoreUnavailable(f"cannot reach Redis at {self.url}: {failure}")
            if self._outage is None:
                self._outage = now
            waited = now - self._outage
            if waited >= self._reconnect_for:
                raise StoreUnavailable(
                    f"lost Redis at {self.url} {waited:.1f}s ago and could not reconnect: {failure}"
                )
            await anyio.sleep(min(backoff, self._reconnect_for - waited))
            backoff = min(backoff * 2, _MAX_BACKOFF)

    async def _connection(self) -> Connection:
        token = loop_token()
        with self._lock:
            slot = self._connections.get(token)
            if slot is None:
                slot = self._connections[token] = _Slot()
        connection = slot.connection
        if connection is not None and not connection.broken:
            return connection
        async with slot.lock:  # one connection per loop, however many callers arrive at once
            connection = slot.connection
            if connection is not None and not connection.broken:
                return connection
            try:
                connection = await Connection.open(self._address, self._connect_timeout)
            except PermissionError as exc:
                raise StoreUnavailable(f"Redis at {self.url}: {exc}") from None
            slot.connection = connection
        self._ever_connected = True
        return connection


class _Slot:
    """An event loop's connection, and the lock that lets one caller open it."""

    __slots__ = ("connection", "lock")

    def __init__(self) -> None:
        self.connection: Connection | None = None
        self.lock = anyio.Lock()
