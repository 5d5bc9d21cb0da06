"""The Redis store's plumbing: URLs, logins, sockets, refusals and refunds (real server)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

pytest.importorskip("hiredis")

import anyfan
import anyfan.redis
from anyfan import Rate, StoreUnavailable
from anyfan._core import QuotaSpec
from anyfan.redis._connection import Connection, ConnectionLost
from anyfan.redis._script import keys_of, mismatch_message, read_reserve
from anyfan.redis._url import parse_url

pytestmark = pytest.mark.anyio


# -- URLs (no server) ----------------------------------------------------------------


def test_urls_parse_and_redact() -> None:
    plain = parse_url("redis://localhost")
    assert (plain.host, plain.port, plain.db, plain.password) == ("localhost", 6379, 0, None)
    assert plain.redacted == "redis://localhost:6379"
    secret = parse_url("rediss://alice:p%40ss@[::1]:7000/3")
    assert (secret.username, secret.password, secret.db) == ("alice", "p@ss", 3)
    assert secret.redacted == "rediss://alice:***@[::1]:7000/3"
    assert "p@ss" not in repr(secret)
    assert parse_url("redis://:pw@h").redacted == "redis://:***@h:6379"
    assert parse_url("redis://bob@h").redacted == "redis://bob@h:6379"
    sock = parse_url("unix:///tmp/r.sock")
    assert (sock.scheme, sock.path, sock.redacted) == ("unix", "/tmp/r.sock", "unix:///tmp/r.sock")


@pytest.mark.parametrize(
    ("url", "error", "match"),
    [
        (6379, TypeError, "url must be a string"),
        ("http://h", ValueError, "redis://, rediss:// or unix://"),
        ("unix://", ValueError, "socket path"),
        ("redis://h:99999", ValueError, "port"),
        ("redis://h/zero", ValueError, "database"),
    ],
)
def test_bad_urls_are_named(url: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        parse_url(url)


def test_replies_that_make_no_sense_are_named() -> None:
    spec = QuotaSpec("k", 1, 1, 1, 1, 1, 1.005, 1)
    with pytest.raises(ValueError, match="unexpected reply"):
        read_reserve(["0"], [spec])
    assert "limit=another" in mismatch_message(" x", spec)
    assert keys_of("", "a}{b") == ("{a}{b}", "{a}{b}:s")


# -- connections ---------------------------------------------------------------------


async def test_a_unix_socket_and_a_database(redis_server: Any) -> None:
    store = anyfan.redis.RedisStore(redis_server.unix_url.replace("unix://", "unix://"))
    async with store:
        await store.ping()
        await Rate(10, store=store, key="unix").acquire()
    numbered = anyfan.redis.RedisStore(redis_server.url.replace("/0", "/3"))
    async with numbered:
        await numbered.ping()
    missing = anyfan.redis.RedisStore(redis_server.url.replace("/0", "/99999"))
    with pytest.raises(StoreUnavailable, match="refused database 99999"):
        await missing.ping()


async def test_a_password_is_used_and_never_shown(redis_server: Any) -> None:
    raw = await Connection.open(parse_url(redis_server.url), 5)
    assert await raw.call("CONFIG", "SET", "requirepass", "s3cret") == b"OK"
    await raw.aclose()
    good = anyfan.redis.RedisStore(redis_server.url.replace("//", "//:s3cret@"))
    async with good:
        await good.ping()
    bad = anyfan.redis.RedisStore(redis_server.url.replace("//", "//:wrong@"))
    with pytest.raises(StoreUnavailable, match="refused the login") as caught:
        await bad.ping()
    assert "wrong" not in str(caught.value)
    assert "s3cret" not in str(caught.value)


async def test_tls_to_a_plain_server_fails_at_once(redis_server: Any) -> None:
    store = anyfan.redis.RedisStore(redis_server.url.replace("redis://", "rediss://"))
    with anyio.fail_after(10), pytest.raises(StoreUnavailable, match="cannot reach"):
        await store.ping()


async def test_a_closed_connection_says_so(redis_url: str) -> None:
    connection = await Connection.open(parse_url(redis_url), 5)
    await connection.aclose()
    assert connection.broken
    with pytest.raises(ConnectionLost, match="closed"):
        await connection.call("PING")


async def test_a_key_of_another_type_is_a_clear_refusal(redis_url: str, redis_prefix: str) -> None:
    store = anyfan.redis.RedisStore(redis_url, prefix=redis_prefix)
    raw = await Connection.open(parse_url(redis_url), 5)
    await raw.call("SET", keys_of(redis_prefix, "taken")[0], "not a hash")
    with pytest.raises(RuntimeError, match=r"refused anyfan's script: .*WRONGTYPE"):
        await Rate(10, store=store, key="taken").acquire()
    await raw.aclose()
    await store.aclose()


async def test_a_read_only_replica_is_waited_out_then_named(redis_server: Any) -> None:
    store = anyfan.redis.RedisStore(redis_server.url, reconnect_for=0.2)
    await store.ping()
    raw = await Connection.open(parse_url(redis_server.url), 5)
    from redis_server import free_port

    await raw.call("REPLICAOF", "127.0.0.1", str(free_port()))  # writes now refused: READONLY
    with anyio.fail_after(10), pytest.raises(StoreUnavailable, match="READONLY"):
        await Rate(10, store=store, key="ro").acquire()
    await raw.call("REPLICAOF", "NO", "ONE")
    await Rate(10, store=store, key="ro").acquire()  # healed
    await raw.aclose()
    await store.aclose()


# -- the engine's side: mixed limits, refunds, actual costs --------------------------


async def test_local_and_stored_rates_together(redis_url: str, redis_prefix: str) -> None:
    store = anyfan.redis.RedisStore(redis_url, prefix=redis_prefix)
    local = Rate(1000, cost=lambda item: 2, actual=lambda item, result: 1)
    stored = Rate(1000, store=store, key="mixed", cost=lambda item: 5, actual=lambda i, r: 3)
    unsettled = Rate(1000, store=store, key="mixed-2")
    fan = anyfan.Fan(4, limits=[local, stored, unsettled])
    units: list[list[float]] = []

    async def call(i: int) -> int:
        return i

    assert await fan.map(call, range(6)) == list(range(6))
    limits = fan._policy.limits  # type: ignore[attr-defined]
    ticket = await limits.acquire(0)
    units.append(limits.settle(ticket, 0))
    assert len(ticket.pending) == 1  # the stored rate with an `actual` owes its store one
    await limits.flush(ticket)
    assert units == [[1, 3, 1]]
    assert not ticket.pending  # every refund owed was sent
    await store.aclose()


async def test_an_actual_for_results_only_keeps_the_estimate_on_errors(
    redis_url: str, redis_prefix: str
) -> None:
    store = anyfan.redis.RedisStore(redis_url, prefix=redis_prefix)

    def actual(item: int, result: int) -> float:
        if isinstance(result, BaseException):
            raise TypeError("results only")
        if result < 0:
            raise ValueError("broken actual")
        return 1

    rate = Rate(1000, store=store, key="actual", cost=lambda item: 4, actual=actual)

    async def call(i: int) -> int:
        if i == 0:
            raise KeyError(i)
        return -i

    outcomes = await anyfan.map(call, [0, 1], limits=[rate], errors="return")
    assert isinstance(outcomes[0], KeyError)  # the estimate stands; the call's error too
    assert isinstance(outcomes[1], ValueError)  # a broken actual fails its item
    await store.aclose()


async def test_a_call_cancelled_while_it_waits_gives_everything_back(
    redis_url: str, redis_prefix: str
) -> None:
    store = anyfan.redis.RedisStore(redis_url, prefix=redis_prefix)
    local = Rate(1000)
    stored = Rate(1, burst=1, store=store, key="cancelled")
    fan = anyfan.Fan(4, limits=[local, stored])
    limits = fan._policy.limits  # type: ignore[attr-defined]
    first = await limits.acquire(0)
    with anyio.move_on_after(0.05):
        await limits.acquire(1)  # would wait about a second
    again = anyfan.redis.RedisStore(redis_url, prefix=redis_prefix)
    wait, _ = await again.reserve([stored._spec(1)])
    assert wait <= 1.1  # the cancelled call's second was given back, not held
    assert first.stored
    await store.aclose()
    await again.aclose()


async def test_refunds_while_the_store_is_down(redis_server: Any) -> None:
    store = anyfan.redis.RedisStore(redis_server.url, reconnect_for=0)
    stored = Rate(1, burst=1, store=store, key="down-refund")
    fallback = Rate(
        2, burst=1, store=store, key="down-local", on_store_error="local", local_share=1
    )
    ticket = await stored.acquire()
    with anyio.move_on_after(0.05):
        await stored.acquire()  # waits; then cancelled while Redis is still up
    redis_server.stop()
    await ticket.settle_async(0)  # the refund is lost with the server: no error
    await fallback.acquire()
    with anyio.move_on_after(0.05):
        await fallback.acquire()  # the local share's wait, cancelled: given back locally
    with anyio.fail_after(5), pytest.raises(StoreUnavailable):
        await stored.acquire()  # no fallback: the error at once, not a hang
    await store.aclose()


async def test_the_local_fallback_settles_actual_costs(redis_server: Any) -> None:
    store = anyfan.redis.RedisStore(redis_server.url, reconnect_for=0)
    rate = Rate(
        100,
        store=store,
        key="fallback-actual",
        on_store_error="local",
        cost=lambda item: 10,
        actual=lambda item, result: 1,
    )
    redis_server.stop()

    async def call(i: int) -> int:
        return i

    fan = anyfan.Fan(2, limits=[rate])
    assert await fan.map(call, range(3)) == [0, 1, 2]
    assert fan.stats.succeeded == 3
    await store.aclose()
