"""Property tests: concurrent calls, maps and streams on one Fan, on every backend and the facade.

For any mix, the concurrency limit is never exceeded, every item ends exactly
once (its value, or its own exception: a call raises it, a map or stream
reports it), retries and the pause are shared through the one Fan, and the
outcomes are the same on asyncio, uvloop, trio and through the blocking facade.
"""

from __future__ import annotations

import threading
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anyfan
from anyfan import Fan, FanError, Retry
from strategies import RUN_BACKENDS, Boom, Flaky, Op, Player, Scripted, workloads

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

ATTEMPTS = 3


def retry() -> Retry:
    # The server-directed delay pauses the whole Fan: every op shares that pause.
    return Retry(
        ATTEMPTS,
        backoff=0.0001,
        max_backoff=0.0001,
        budget=None,
        delay_hint=lambda error: 0.0001 if isinstance(error, Flaky) and error.index % 2 else None,
        ramp=0,
    )


def expected(item: Scripted, attempts: int) -> Any:
    if item.flaky >= attempts:
        return ("flaky", item.index)
    if item.fails:
        return ("boom", item.index)
    return ("ok", item.value)


def normal(value: Any) -> Any:
    if isinstance(value, Flaky):
        return ("flaky", value.index)
    if isinstance(value, Boom):
        return ("boom", value.index)
    assert not isinstance(value, BaseException), value
    return ("ok", value)


def expected_retries(ops: list[Op], attempts: int) -> int:
    return sum(min(item.flaky, attempts - 1) for op in ops for item in op.items)


async def play(
    ops: list[Op], concurrency: int, retrying: bool
) -> tuple[dict[int, Any], Player, Any]:
    player = Player()
    fan = Fan(concurrency, retry=retry() if retrying else None)
    results: dict[int, Any] = {}

    def record(index: int, value: Any) -> None:
        assert index not in results, "an item ended twice"
        results[index] = normal(value)

    async def run(op: Op) -> None:
        if op.kind == "call":
            [item] = op.items
            value: Any
            try:
                value = await fan.call(player, item)
            except Exception as error:  # its own: `normal` rejects anything else, FanError too
                value = error
            record(item.index, value)
        elif op.kind == "map":
            values = await fan.map(player, op.items, errors="return")
            for item, result in zip(op.items, values, strict=True):
                record(item.index, result)
        else:
            async with fan.stream(player, op.items) as outcomes:
                async for outcome in outcomes:
                    record(outcome.item.index, outcome.error or outcome.value)

    async with anyio.create_task_group() as tg:
        for op in ops:
            tg.start_soon(run, op)
    return results, player, fan.stats


def facade(ops: list[Op], concurrency: int, retrying: bool) -> tuple[dict[int, Any], Player, Any]:
    player = Player()
    results: dict[int, Any] = {}
    lock = threading.Lock()

    def record(index: int, value: Any) -> None:
        with lock:
            assert index not in results, "an item ended twice"
            results[index] = normal(value)

    with anyfan.blocking.Fan(concurrency, retry=retry() if retrying else None) as fan:

        def run(op: Op) -> None:
            if op.kind == "call":
                [item] = op.items
                value: Any
                try:
                    value = fan.call(player, item)
                except Exception as error:
                    value = error
                record(item.index, value)
            elif op.kind == "map":
                values = fan.map(player, op.items, errors="return")
                for item, result in zip(op.items, values, strict=True):
                    record(item.index, result)
            else:
                for outcome in fan.stream(player, op.items):
                    record(outcome.item.index, outcome.error or outcome.value)

        threads = [threading.Thread(target=run, args=(op,)) for op in ops]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
            assert not thread.is_alive()
        stats = fan.stats
    return results, player, stats


def check(
    ops: list[Op],
    concurrency: int,
    retrying: bool,
    results: dict[int, Any],
    player: Player,
    stats: Any,
) -> None:
    attempts = ATTEMPTS if retrying else 1
    items = [item for op in ops for item in op.items]
    assert results == {item.index: expected(item, attempts) for item in items}
    assert player.peak <= concurrency
    assert player.active == 0
    assert player.attempts == {item.index: min(item.flaky + 1, attempts) for item in items}
    # One Fan's stats count every op's attempts: retries are shared, not per run.
    assert stats.retried == expected_retries(ops, attempts)
    assert stats.started == sum(player.attempts.values())
    assert stats.in_flight == 0
    hinted = retrying and any(item.flaky and item.index % 2 for item in items)
    assert (stats.paused > 0) == hinted


@PROPERTY
@given(ops=workloads(), concurrency=st.integers(1, 4), retrying=st.booleans())
def test_mixed_calls_maps_and_streams_on_one_fan(
    ops: list[Op], concurrency: int, retrying: bool
) -> None:
    outcomes = {}
    for name, backend, options in RUN_BACKENDS:
        results, player, stats = anyio.run(
            play, ops, concurrency, retrying, backend=backend, backend_options=options
        )
        check(ops, concurrency, retrying, results, player, stats)
        outcomes[name] = results
    results, player, stats = facade(ops, concurrency, retrying)
    check(ops, concurrency, retrying, results, player, stats)
    outcomes["facade"] = results
    assert len({repr(sorted(r.items())) for r in outcomes.values()}) == 1


# -- first and group ---------------------------------------------------------------


async def play_first(items: list[Scripted], concurrency: int) -> tuple[Any, Player]:
    player = Player()

    def pulled() -> Any:
        for item in items:
            player.log.append(("pull", item.index, 0))
            yield item

    try:
        result: Any = await anyfan.first(player, pulled(), concurrency=concurrency, retry=retry())
    except FanError as error:
        result = error
    return result, player


@PROPERTY
@given(
    items=st.lists(
        st.builds(Scripted, steps=st.integers(0, 4), flaky=st.integers(0, 3), fails=st.booleans()),
        min_size=1,
        max_size=8,
    ).map(lambda made: [Scripted(i, s.steps, s.flaky, s.fails) for i, s in enumerate(made)]),
    concurrency=st.integers(1, 4),
)
def test_first_returns_a_success_or_every_failure(items: list[Scripted], concurrency: int) -> None:
    winners = {item.value for item in items if expected(item, ATTEMPTS)[0] == "ok"}
    for _, backend, options in RUN_BACKENDS:
        result, player = anyio.run(
            play_first, items, concurrency, backend=backend, backend_options=options
        )
        assert player.active == 0
        assert player.peak <= concurrency
        if winners:
            assert result in winners
            # No item is taken from the input once a call has succeeded. (One taken
            # before may still be entered, and is cancelled at its first await.)
            first_ok = next(i for i, event in enumerate(player.log) if event[0] == "ok")
            late = {index for kind, index, _ in player.log[first_ok:] if kind == "pull"}
            assert not late & set(player.attempts)
        else:
            assert isinstance(result, FanError)
            assert list(result.indices) == [item.index for item in items]
            assert [normal(e) for e in result.exceptions] == [
                expected(item, ATTEMPTS) for item in items
            ]


async def play_group(items: list[Scripted], concurrency: int) -> tuple[Any, Player]:
    player = Player()
    fan = Fan(concurrency, retry=retry())
    try:
        async with fan.group() as g:
            for item in items:
                g.start_soon(player, item)
        result: Any = None
    except FanError as error:
        result = error
    return result, player


@PROPERTY
@given(ops=workloads(max_ops=1, max_items=10), concurrency=st.integers(1, 4))
def test_group_keeps_the_limit_and_reports_its_failures(ops: list[Op], concurrency: int) -> None:
    items = [item for op in ops for item in op.items]
    failing = {item.index for item in items if expected(item, ATTEMPTS)[0] != "ok"}
    for _, backend, options in RUN_BACKENDS:
        result, player = anyio.run(
            play_group, items, concurrency, backend=backend, backend_options=options
        )
        assert player.active == 0
        assert player.peak <= concurrency
        if not failing:
            assert result is None
            assert set(player.attempts) == {item.index for item in items}
        else:
            assert isinstance(result, FanError)
            assert set(result.indices) <= failing
            assert list(result.indices) == sorted(result.indices)
