"""The blocking Fan's ``stats``: the async Fan's snapshot, read on the loop thread."""

from __future__ import annotations

import anyfan
from anyfan import blocking


def test_stats_count_every_attempt_and_retry() -> None:
    tries: dict[int, int] = {}

    def flaky(x: int) -> int:
        tries[x] = tries.get(x, 0) + 1
        if x % 2 and tries[x] == 1:
            raise ConnectionError(x)
        return x

    retry = anyfan.Retry(2, backoff=0.001, max_backoff=0.001, budget=None)
    with blocking.Fan(4, retry=retry, limits=[anyfan.Rate(10_000)]) as fan:
        assert fan.map(flaky, range(10)) == list(range(10))
        stats = fan.stats
    assert isinstance(stats, anyfan.FanStats)
    assert (stats.started, stats.succeeded, stats.retried, stats.failed) == (15, 10, 5, 0)
    assert stats.in_flight == 0
    assert [limit.name for limit in stats.limits] == ["10000/1s"]
