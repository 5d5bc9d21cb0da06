"""One `RedisStore` serves every event loop of a process at once, each on its own connection.

The blocking facade's loop (asyncio, in its own thread), a trio run and an asyncio run in
other threads all use one store and one key together: each loop gets a connection of its
own (a socket never crosses loops), and the three share a single quota.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

import anyio
import pytest

pytest.importorskip("hiredis")
pytest.importorskip("trio")

import anyfan.blocking
import anyfan.redis
from anyfan import Rate

RATE = 20.0  # units per second
PER_LOOP = 15


def test_one_store_serves_several_loops_at_once(redis_url: str, redis_prefix: str) -> None:
    store = anyfan.redis.RedisStore(redis_url, prefix=redis_prefix)
    together = threading.Barrier(3, timeout=30)
    guard = threading.Lock()
    starts: list[float] = []
    connections: list[Any] = []
    failures: list[BaseException] = []

    async def reserve_some() -> None:
        rate = Rate(RATE, per=1, burst=1, store=store, key="loops")
        connection = await store._connection()
        mine = []
        for _ in range(PER_LOOP):
            _wait, [charge] = await store.reserve([rate._spec(1)])
            mine.append(charge.start)
        assert await store._connection() is connection  # kept for this loop
        await store.aclose()
        with guard:
            starts.extend(mine)
            connections.append(connection)

    def in_thread(backend: str) -> None:
        try:
            together.wait()
            anyio.run(reserve_some, backend=backend)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [
        threading.Thread(target=in_thread, args=(backend,)) for backend in ("trio", "asyncio")
    ]
    for thread in threads:
        thread.start()
    loop = anyfan.blocking.default_loop()
    together.wait()
    loop.call(reserve_some)
    for thread in threads:
        thread.join(timeout=30)
    assert not failures, failures
    assert not any(thread.is_alive() for thread in threads)

    # Three loops, three connections.
    assert len(connections) == 3
    assert len({id(connection) for connection in connections}) == 3
    # One quota (a quota per loop would overlap): 45 starts at RATE per second with a
    # burst of 1 are each at least an interval apart (server-clock floats: ulp ~ 2e-7 s).
    assert len(starts) == 3 * PER_LOOP
    ordered = sorted(starts)
    assert ordered[-1] - ordered[0] >= (len(ordered) - 1) / RATE - 1e-5
    for earlier, later in itertools.pairwise(ordered):
        assert later - earlier >= 1 / RATE - 1e-5
