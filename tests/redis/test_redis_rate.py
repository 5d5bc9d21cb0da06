"""A `Rate` kept in a real Redis: one quota for every process, with the local Rate's guarantees."""

from __future__ import annotations

import pickle
import time
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("hiredis")

import anyfan
import anyfan.redis
from anyfan import Rate, StoreUnavailable
from anyfan._core import StoredCharge
from anyfan.redis._script import keys_of

pytestmark = pytest.mark.anyio


def store_for(url: str, prefix: str, **options: Any) -> anyfan.redis.RedisStore:
    """A store of its own, as another process would have."""
    return anyfan.redis.RedisStore(url, prefix=prefix, **options)


# -- the window bounds, across processes, on the server's clock -------------------


def window_sums(
    starts: list[float], costs: list[float], width: float
) -> list[tuple[float, float, float]]:
    """For each start s: (s, cost started in [s, s + width), largest such cost)."""
    order = sorted(range(len(starts)), key=starts.__getitem__)
    out = []
    for n, i in enumerate(order):
        total = largest = 0.0
        for j in order[n:]:
            if starts[j] >= starts[i] + width:
                break
            total += costs[j]
            largest = max(largest, costs[j])
        out.append((starts[i], total, largest))
    return out


demand = st.tuples(
    st.integers(0, 60).map(float),  # cost
    st.sampled_from((1.0, 1.0, 0.0, 0.5)),  # share of it really used
    st.sampled_from((0, 0, 1, 2)),  # which process asks
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    limit=st.sampled_from((50.0, 120.0, 400.0)),
    burst=st.none() | st.sampled_from((5.0, 40.0)),
    calls=st.lists(demand, min_size=1, max_size=40),
    width=st.sampled_from((1.0, 1.5, 2.5)),
)
def test_window_bounds_hold_across_processes(
    redis_url: str,
    redis_prefix: str,
    limit: float,
    burst: float | None,
    calls: list[tuple[float, float, int]],
    width: float,
) -> None:
    """Over any window W >= 1 s: at most rate * W + max(burst, largest call), as finally
    settled; within any 1 s slice, at most its cap (or one oversized call alone)."""
    key = f"bounds-{time.monotonic_ns()}"

    async def run() -> tuple[list[float], list[float], Rate]:
        stores = [store_for(redis_url, redis_prefix) for _ in range(3)]
        rates = [Rate(limit, per=1, burst=burst, store=s, key=key) for s in stores]
        starts: list[float] = []
        costs: list[float] = []
        for cost, used, who in calls:
            rate = rates[who]
            wait, [charge] = await stores[who].reserve([rate._spec(cost)])
            assert wait >= 0
            given_back = await stores[who].settle(charge, cost * used)
            starts.append(charge.start)
            costs.append(cost - given_back)
        for store in stores:
            await store.aclose()
        return starts, costs, rates[0]

    starts, costs, rate = anyio.run(run)
    for start, total, largest in window_sums(starts, costs, width):
        bound = rate.rate * width + max(rate.burst, largest)
        assert total <= bound * (1 + 1e-9) + 1e-6, (start, total, bound)
    cap = rate._state.slice_cap
    for start, total, largest in window_sums(starts, costs, 1.0):
        if largest > cap:
            assert total == pytest.approx(largest), start
        else:
            assert total <= cap * (1 + 1e-9) + 1e-6, (start, total, cap)


async def test_reservations_start_in_order_across_processes(
    redis_url: str, redis_prefix: str
) -> None:
    stores = [store_for(redis_url, redis_prefix) for _ in range(2)]
    rates = [Rate(100, store=s, key="order") for s in stores]
    starts = []
    for i in range(30):
        _, [charge] = await stores[i % 2].reserve([rates[i % 2]._spec(1 + i % 7)])
        starts.append(charge.start)
    assert starts == sorted(starts)
    for store in stores:
        await store.aclose()


async def test_a_large_call_is_not_starved_by_small_ones(redis_url: str, redis_prefix: str) -> None:
    """Reservations are served in arrival order: later small calls queue behind a big one."""
    small, big = store_for(redis_url, redis_prefix), store_for(redis_url, redis_prefix)
    rate_small = Rate(100, store=small, key="fair")
    rate_big = Rate(100, store=big, key="fair")
    for _ in range(5):
        await small.reserve([rate_small._spec(1)])
    _, [large] = await big.reserve([rate_big._spec(90)])
    _, [after] = await small.reserve([rate_small._spec(1)])
    assert after.start >= large.start
    await small.aclose()
    await big.aclose()


# -- through the engine, on every backend ------------------------------------------


async def test_two_processes_share_one_quota(redis_url: str, redis_prefix: str) -> None:
    stores = [store_for(redis_url, redis_prefix) for _ in range(2)]
    rates = [Rate(40, burst=2, store=s, key="shared") for s in stores]

    async def echo(i: int) -> int:
        return i

    results: dict[int, list[int]] = {}
    started = anyio.current_time()

    async def one(n: int) -> None:
        results[n] = await anyfan.map(echo, range(20), limits=[rates[n]], concurrency=8)

    async with anyio.create_task_group() as tg:
        for n in range(2):
            tg.start_soon(one, n)
    elapsed = anyio.current_time() - started
    assert results == {0: list(range(20)), 1: list(range(20))}
    # 40 calls at 40/s with a burst of 2 cannot take less than 38/40 s, together.
    assert elapsed >= 38 / 40 * 0.98
    assert sum(store.round_trips for store in stores) >= 40
    for store in stores:
        await store.aclose()


async def test_refunds_of_unused_estimates_reach_other_processes(
    redis_url: str, redis_prefix: str
) -> None:
    spender, other = store_for(redis_url, redis_prefix), store_for(redis_url, redis_prefix)
    tpm = Rate(
        1000, burst=100, store=spender, key="tpm", cost=lambda item: 100, actual=lambda item, r: 1
    )
    seen = Rate(1000, burst=100, store=other, key="tpm")

    async def call(i: int) -> int:
        return i

    await anyfan.map(call, range(3), limits=[tpm])  # 300 estimated, 3 used
    _, [charge] = await other.reserve([seen._spec(100)])
    now_wait, _ = await other.reserve([seen._spec(0)])
    # Without the refunds the 100 would wait about 0.3 s for the estimates to drain.
    assert charge.start - charge.seg_start <= 0.01
    assert now_wait < 0.25
    await spender.aclose()
    await other.aclose()


async def test_a_standalone_stored_rate(redis_url: str, redis_prefix: str) -> None:
    store = store_for(redis_url, redis_prefix)
    rate = Rate(1000, store=store, key="alone")
    async with rate as first:
        assert first.cost == 1
    ticket = await rate.acquire(cost=5)
    with pytest.raises(TypeError, match="settle_async"):
        ticket.settle(1)
    await ticket.settle_async(1)
    assert ticket.settled
    with pytest.raises(ValueError, match="already settled"):
        await ticket.settle_async(1)
    with pytest.raises(TypeError, match="local Rate"):
        rate.has_capacity()
    with pytest.raises(TypeError, match="cannot be adjusted"):
        rate.adjust(limit=5)
    rate.observe(0, 60)  # headers do not move a shared quota: nothing to assert but no error
    await store.aclose()


async def test_the_key_mismatch_is_named(redis_url: str, redis_prefix: str) -> None:
    store = store_for(redis_url, redis_prefix)
    await Rate(10, per=60, store=store, key="rpm").acquire()
    with pytest.raises(
        ValueError, match=r"'rpm' is already in use with limit=10 per 60s.*20 per 60s"
    ):
        await Rate(20, per=60, store=store, key="rpm").acquire()
    await store.aclose()


async def test_keys_share_a_hash_tag_and_expire_when_idle(
    redis_url: str, redis_prefix: str
) -> None:
    store = store_for(redis_url, redis_prefix)
    await Rate(100, store=store, key="ttl").acquire(cost=10)
    from anyfan.redis._connection import Connection
    from anyfan.redis._url import parse_url

    raw = await Connection.open(parse_url(redis_url), 5)
    hash_key, set_key = keys_of(redis_prefix, "ttl")
    assert hash_key == redis_prefix + "{ttl}"
    assert set_key == hash_key + ":s"
    for key in (hash_key, set_key):
        ttl = await raw.call("PTTL", key)
        assert 0 < ttl <= 4_000  # the slice, its guard and a second's margin, in ms
    assert keys_of("p:", "{tenant}:rpm") == ("p:{tenant}:rpm", "p:{tenant}:rpm:s")
    await raw.aclose()
    await store.aclose()


def test_through_the_blocking_facade(redis_url: str, redis_prefix: str) -> None:
    store = store_for(redis_url, redis_prefix)
    rate = Rate(200, store=store, key="blocking")
    loop = anyfan.blocking.default_loop()
    assert anyfan.blocking.map(abs, [-1, -2, -3], limits=[rate], loop=loop) == [1, 2, 3]
    assert store.round_trips >= 3
    loop.call(store.aclose)  # the connection belongs to the facade's loop


# -- faults ------------------------------------------------------------------------


async def test_unreachable_at_start_fails_at_once_without_the_password() -> None:
    from redis_server import free_port

    store = anyfan.redis.RedisStore(f"redis://:s3cret@127.0.0.1:{free_port()}/0")
    rate = Rate(10, store=store, key="down")
    with anyio.fail_after(5):
        with pytest.raises(StoreUnavailable, match="cannot reach Redis at") as caught:
            await rate.acquire()
    assert "s3cret" not in str(caught.value)
    assert "s3cret" not in repr(store)
    assert "s3cret" not in repr(rate)
    assert "***" in store.url


async def test_lost_mid_run_waits_then_fails_and_a_restart_heals(redis_server: Any) -> None:
    store = anyfan.redis.RedisStore(redis_server.url, reconnect_for=0.3)
    rate = Rate(1000, store=store, key="lost")
    await rate.acquire()
    redis_server.stop()
    with anyio.fail_after(10):
        with pytest.raises(StoreUnavailable, match="could not reconnect"):
            await rate.acquire()
    redis_server.start()  # a new, empty server on the same port: scripts reloaded
    ticket = await rate.acquire()
    assert ticket.cost == 1
    await store.aclose()


async def test_retry_carries_calls_across_a_restart(redis_server: Any) -> None:
    store = anyfan.redis.RedisStore(redis_server.url, reconnect_for=0)
    rate = Rate(1000, store=store, key="retried")
    failures: list[BaseException] = []

    async def call(i: int) -> int:
        return i

    await anyfan.map(call, [0], limits=[rate])
    redis_server.stop()

    def restart(event: anyfan.RetryEvent[Any]) -> None:
        failures.append(event.error)
        if len(failures) == 2:
            redis_server.start()  # back before the third attempt

    result = await anyfan.map(
        call, [1], limits=[rate], retry=anyfan.Retry(4, backoff=0.01), on_retry=restart
    )
    assert result == [1]
    assert [type(e) for e in failures] == [StoreUnavailable, StoreUnavailable]
    await store.aclose()


async def test_a_store_error_without_retry_fails_the_item(redis_server: Any) -> None:
    store = anyfan.redis.RedisStore(redis_server.url, reconnect_for=0)
    rate = Rate(1000, store=store, key="no-retry")
    await rate.acquire()
    redis_server.stop()

    async def call(i: int) -> int:
        return i

    [outcome] = await anyfan.map(call, [1], limits=[rate], errors="return")
    assert isinstance(outcome, StoreUnavailable)
    await store.aclose()


async def test_local_fallback_admits_at_its_share(redis_server: Any) -> None:
    store = anyfan.redis.RedisStore(redis_server.url, reconnect_for=0)
    rate = Rate(40, store=store, key="fallback", on_store_error="local", local_share=0.5)
    await rate.acquire()
    redis_server.stop()
    started = anyio.current_time()
    tickets = [await rate.acquire() for _ in range(12)]
    elapsed = anyio.current_time() - started
    assert len(tickets) == 12
    assert elapsed >= 10 / 20 * 0.95  # 20/s (half of 40) with a burst of 2
    tickets[-1].settle(1)  # a local charge settles at once
    assert "local_share=0.5" in repr(rate)
    await store.aclose()


# -- construction and plumbing -----------------------------------------------------


def test_bad_arguments_are_named() -> None:
    store = anyfan.redis.RedisStore("redis://localhost")
    with pytest.raises(ValueError, match="give store="):
        Rate(1, key="k")
    with pytest.raises(TypeError, match="needs key="):
        Rate(1, store=store)
    with pytest.raises(TypeError, match="store must be"):
        Rate(1, store=object(), key="k")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key must be"):
        Rate(1, store=store, key="")
    with pytest.raises(ValueError, match="on_store_error"):
        Rate(1, store=store, key="k", on_store_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="local_share"):
        Rate(1, store=store, key="k", local_share=2)
    with pytest.raises(ValueError, match="local_share must be a number above 0 to 1"):
        Rate(1, store=store, key="k", local_share=0)
    with pytest.raises(ValueError, match="redis://"):
        anyfan.redis.RedisStore("http://localhost")
    with pytest.raises(TypeError, match="prefix"):
        anyfan.redis.RedisStore("redis://localhost", prefix=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reconnect_for"):
        anyfan.redis.RedisStore("redis://localhost", reconnect_for=-1)


def test_a_store_pickles_as_its_settings_and_hides_its_password() -> None:
    store = anyfan.redis.RedisStore("redis://user:pw@10.0.0.1:7000/2", prefix="x:", reconnect_for=3)
    copy = pickle.loads(pickle.dumps(store))
    assert (
        repr(copy) == repr(store) == "RedisStore('redis://user:***@10.0.0.1:7000/2', prefix='x:')"
    )
    assert copy.prefix == "x:"
    assert Rate(5, store=store, key="k").store is store
    assert Rate(5, store=store, key="k").key == "k"
    assert Rate(5).store is None
    assert Rate(5).key is None


def test_a_stored_charge_is_plain_data() -> None:
    spec = Rate(5, store=anyfan.redis.RedisStore("redis://h"), key="k")._spec(2)
    charge = StoredCharge(spec, 1, 0.0, 0.0, 0.4, 0.0, 1.0)
    assert pickle.loads(pickle.dumps(charge)) == charge
