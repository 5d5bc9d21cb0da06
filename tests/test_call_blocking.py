"""`anyfan.blocking.Fan.call` / ``.wrap`` from many threads, and the OpenAI builders' Fans."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import pytest

import anyfan
import anyfan.openai
from anyfan import FanError
from anyfan.blocking import Fan


def test_calls_from_many_threads_share_the_limit() -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    async def tracked(i: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        await anyio.sleep(0.001)
        with lock:
            active -= 1
        return i * 2

    with Fan(3) as fan, ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: fan.call(tracked, i), range(64)))
        stats = fan.stats
    assert results == [i * 2 for i in range(64)]
    assert peak <= 3
    assert stats.succeeded == 64


def test_call_raises_its_own_exception_and_wrap_decorates() -> None:
    with Fan(2, retry=anyfan.Retry(2, backoff=0.001, max_backoff=0.001, budget=None)) as fan:

        @fan.wrap
        def parse(text: str) -> int:
            return int(text)

        assert parse("12") == 12
        assert parse.__name__ == "parse"
        with pytest.raises(ValueError, match="invalid literal") as caught:
            parse("x")
        assert not isinstance(caught.value, FanError)
        outcomes: list[anyfan.Outcome[Any, Any]] = []
        assert fan.call(parse, "3", on_outcome=outcomes.append) == 3
        assert outcomes[0].attempts == 1
        with pytest.raises(ValueError, match="timeout"):
            fan.wrap(parse, timeout=0)


def test_a_closed_fan_refuses_calls() -> None:
    fan = Fan(2)
    fan.close()
    with pytest.raises(RuntimeError, match="closed"):
        fan.call(int, "1")


@pytest.mark.anyio
async def test_openai_fan_has_call_and_wrap() -> None:
    fan = anyfan.openai.fan(rpm=6000, tpm=1_000_000)

    async def create(request: dict[str, object]) -> str:
        return str(request["model"])

    request: dict[str, object] = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5,
    }
    assert await fan.call(create, request) == "m"
    assert await fan.wrap(create)(request) == "m"
    [requests, tokens] = fan.stats.limits
    assert requests.admitted > 0
    assert tokens.admitted > 0


def test_openai_blocking_fan_has_call_and_wrap() -> None:
    with anyfan.openai.blocking_fan(rpm=6000) as fan:

        def create(request: dict[str, Any]) -> str:
            return str(request["model"])

        assert fan.call(create, {"model": "m", "messages": []}) == "m"
        assert fan.wrap(create)({"model": "n", "messages": []}) == "n"


def test_blocking_one_shots_take_the_hooks() -> None:
    events: list[anyfan.RetryEvent[Any]] = []
    tries: dict[int, int] = {}

    async def flaky(i: int) -> int:
        tries[i] = tries.get(i, 0) + 1
        if tries[i] == 1:
            raise ConnectionError(i)
        return i

    retry = anyfan.Retry(2, backoff=0.001, max_backoff=0.001, budget=None)
    assert anyfan.blocking.map(flaky, [1, 2], retry=retry, on_retry=events.append) == [1, 2]
    assert sorted(event.item for event in events) == [1, 2]
    assert all(event.attempt == 1 for event in events)
