"""``progress=`` and ``on_outcome=``: per-outcome reporting on map and stream."""

from __future__ import annotations

import sys
import types
from typing import Any, ClassVar

import anyio
import pytest

import anyfan
from anyfan._core._progress import make_observer, total_of


class FakeBar:
    instances: ClassVar[list[FakeBar]] = []

    def __init__(self, *, total: int | None, desc: str, **_: Any) -> None:
        self.total = total
        self.desc = desc
        self.count = 0
        self.postfix: dict[str, int] = {}
        self.closed = False
        FakeBar.instances.append(self)

    def update(self, n: int) -> None:
        self.count += n

    def set_postfix(self, refresh: bool = True, **values: int) -> None:
        self.postfix = values

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_tqdm(monkeypatch: pytest.MonkeyPatch) -> type[FakeBar]:
    FakeBar.instances = []
    package = types.ModuleType("tqdm")
    auto = types.ModuleType("tqdm.auto")
    auto.tqdm = FakeBar  # type: ignore[attr-defined]
    package.auto = auto  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tqdm", package)
    monkeypatch.setitem(sys.modules, "tqdm.auto", auto)
    return FakeBar


async def half_fail(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    if x % 2:
        raise ValueError(x)
    return x


def test_total_is_known_only_without_consuming() -> None:
    assert total_of([1, 2, 3]) == 3
    assert total_of(range(10)) == 10
    assert total_of(x for x in range(3)) is None

    async def agen() -> Any:
        yield 1

    assert total_of(agen()) is None

    class Weird:
        def __length_hint__(self) -> int:
            raise TypeError("no")

    assert total_of(Weird()) is None


def test_nothing_asked_costs_nothing() -> None:
    observer, close = make_observer([1], False, None)
    assert observer is None
    close()


def test_bad_options_are_named() -> None:
    with pytest.raises(TypeError, match="on_outcome"):
        make_observer([], False, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="progress"):
        make_observer([], 1, None)  # type: ignore[arg-type]


def test_missing_tqdm_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match=r"anyfan\[progress\]"):
        make_observer([], True, None)


@pytest.mark.anyio
async def test_map_reports_every_outcome_once(fake_tqdm: type[FakeBar]) -> None:
    seen: list[anyfan.Outcome[int, int]] = []
    results = await anyfan.map(
        half_fail, range(100), errors="return", progress="job", on_outcome=seen.append
    )
    assert len(results) == 100
    assert sorted(o.index for o in seen) == list(range(100))
    assert all(o.ok == (o.index % 2 == 0) for o in seen)
    assert all(o.elapsed >= 0 and o.attempts == 1 for o in seen)
    (bar,) = fake_tqdm.instances
    assert (bar.total, bar.desc, bar.count, bar.closed) == (100, "job", 100, True)
    assert bar.postfix == {"failed": 50, "retried": 0}


@pytest.mark.anyio
async def test_stream_bar_counts_and_closes_on_early_exit(fake_tqdm: type[FakeBar]) -> None:
    def endless() -> Any:
        n = 0
        while True:
            yield n
            n += 1

    consumed = 0
    async with anyfan.stream(half_fail, endless(), progress=True, concurrency=4) as outcomes:
        async for _ in outcomes:
            consumed += 1
            if consumed == 11:
                break
    (bar,) = fake_tqdm.instances
    assert bar.total is None
    assert bar.count >= consumed == 11
    assert bar.closed


@pytest.mark.anyio
async def test_retries_show_in_the_bar(fake_tqdm: type[FakeBar]) -> None:
    tries: dict[int, int] = {}

    async def flaky(x: int) -> int:
        tries[x] = tries.get(x, 0) + 1
        if tries[x] == 1:
            raise ConnectionError(x)
        return x

    retry = anyfan.Retry(3, backoff=0.001, max_backoff=0.001, budget=None)
    assert await anyfan.map(flaky, range(5), retry=retry, progress=True) == list(range(5))
    (bar,) = fake_tqdm.instances
    assert bar.postfix == {"failed": 0, "retried": 5}


@pytest.mark.anyio
async def test_a_failing_hook_stops_the_run_and_propagates() -> None:
    calls = 0

    def hook(outcome: anyfan.Outcome[int, int]) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("hook broke")

    with pytest.raises(RuntimeError, match="hook broke"):
        await anyfan.map(half_fail, range(1000), on_outcome=hook, concurrency=2)
    assert calls < 1000
