"""`Fan`: a reusable engine whose limits hold across every call and task using it."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import anyfan
from anyfan import DEFAULT_CONCURRENCY, Fan, FanError
from strategies import RUN_BACKENDS, CountingInput, Crowd, Job, Probe

pytestmark = pytest.mark.anyio


def test_repr_and_properties() -> None:
    assert repr(Fan()) == f"Fan(concurrency={DEFAULT_CONCURRENCY}, timeout=None, errors='raise')"
    fan = Fan(4, timeout=2, errors="collect")
    assert repr(fan) == "Fan(concurrency=4, timeout=2.0, errors='collect')"
    assert fan.concurrency == 4
    assert fan.in_flight == 0


def test_repr_shows_limits_and_retry_when_set() -> None:
    fan = Fan(2, limits=[anyfan.Rate(60, per=60)], retry=anyfan.Retry(attempts=2))
    text = repr(fan)
    assert text.startswith(
        "Fan(concurrency=2, timeout=None, errors='raise', limits=[Rate(60, per=60)]"
    )
    assert ", retry=Retry(attempts=2," in text


async def test_in_flight_counts_calls_across_uses() -> None:
    fan = Fan(5)
    seen: list[int] = []

    async def call(i: int) -> int:
        await anyio.lowlevel.checkpoint()
        seen.append(fan.in_flight)
        await anyio.lowlevel.checkpoint()
        return i

    await fan.map(call, range(3))
    assert 1 <= max(seen) <= 3
    assert fan.in_flight == 0


async def test_the_limit_is_shared_by_concurrent_map_gather_and_stream() -> None:
    fan = Fan(3)
    crowd = Crowd(3)

    async def use_stream() -> None:
        async with fan.stream(crowd, range(10)) as outcomes:
            assert len([o async for o in outcomes]) == 10

    with anyio.fail_after(30):  # a hang guard only
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(fan.map, crowd, range(10))
                tg.start_soon(use_stream)
                tg.start_soon(lambda: fan.gather(*(crowd(i) for i in range(10))))
    assert crowd.calls == 60
    assert crowd.peak == 3
    assert fan.in_flight == 0


async def test_the_limit_holds_for_sync_callables_across_tasks() -> None:
    fan = Fan(2)
    probe = Probe()
    async with anyio.create_task_group() as tg:
        for start in range(0, 30, 10):
            tg.start_soon(fan.map, probe.sync, [Job(i) for i in range(start, start + 10)])
    assert sorted(probe.finished) == list(range(30))
    assert probe.peak <= 2


async def test_per_call_concurrency_narrows_but_never_widens() -> None:
    fan = Fan(4)
    narrow = Crowd(2)
    with anyio.fail_after(30):  # a hang guard only
        await fan.map(narrow, range(12), concurrency=2)
    assert narrow.peak == 2
    wide = Crowd(4)
    with anyio.fail_after(30):
        await fan.map(wide, range(12), concurrency=100)
    assert wide.peak == 4


async def test_error_policy_defaults_to_the_fans_and_can_be_overridden() -> None:
    jobs = [Job(0), Job(1, fails=True)]
    fan = Fan(errors="return")
    # Typed list[int]: the static type cannot see the Fan's own default policy.
    results: list[Any] = await fan.map(Probe(), jobs)
    assert results[0] == 0
    assert isinstance(results[1], Exception)
    with pytest.raises(FanError) as info:
        await fan.map(Probe(), jobs, errors="collect")
    assert info.value.results is not None
    with pytest.raises(ValueError, match="errors must be one of"):
        await fan.map(Probe(), jobs, errors="skip")  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"concurrency": 0}, ValueError, "concurrency must be at least 1"),
        ({"concurrency": "2"}, TypeError, "concurrency must be an int"),
        ({"timeout": 0}, ValueError, "timeout must be a positive"),
        ({"deadline": -1.0}, ValueError, "deadline must be a positive"),
    ],
)
async def test_bad_per_call_options_fail_before_any_call(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    probe = Probe()
    with pytest.raises(error, match=message):
        await Fan().map(probe, [Job(0)], **kwargs)
    with pytest.raises(error, match=message):
        await anyfan.map(probe, [Job(0)], **kwargs)
    assert probe.started == []


def test_one_fan_serves_successive_event_loops() -> None:
    fan = Fan(3)
    for _, backend, options in RUN_BACKENDS:
        probe = Probe()
        jobs = [Job(i, steps=i % 3) for i in range(10)]
        results = anyio.run(fan.map, probe, jobs, backend=backend, backend_options=options)
        assert results == [job.value for job in jobs]
        assert probe.peak <= 3
        assert fan.in_flight == 0


async def test_a_run_stopped_before_it_starts_pulls_nothing() -> None:
    from anyfan._core._aggregate import Collector
    from anyfan._core._engine import MapRun
    from anyfan._core._slots import Slots

    source = CountingInput([Job(0), Job(1)])
    collector = Collector("raise")
    run: MapRun[Job, int] = MapRun(
        Probe(), source, collector=collector, slots=Slots(2), width=2, timeout=None, deadline=None
    )
    run.stop()
    async with run.running(stop_on_exit=False):
        pass
    assert source.pulled == 0
    assert collector.outcome() == []


async def test_a_misspelt_option_is_a_type_error_at_once() -> None:
    fan = anyfan.Fan(2)
    with pytest.raises(
        TypeError, match=r"^map\(\) got an unexpected keyword argument 'concurency'"
    ):
        await fan.map(str, [1], concurency=3)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"^stream\(\) got an unexpected keyword argument"):
        fan.stream(str, [1], orderd=True)  # type: ignore[call-overload]
    assert fan.stats.started == 0
