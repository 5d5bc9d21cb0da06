"""`anyfan.stream`: outcomes as they finish or in input order; leaving early stops the work."""

from __future__ import annotations

import itertools
import threading
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest

import anyfan
from anyfan import DeadlineExceeded, Outcome
from anyfan._core._errors import Misuse
from strategies import (
    CLOCKED_BACKEND_IDS,
    Boom,
    CountingInput,
    Job,
    Probe,
    check_is_a_genuine_outcome,
    clocked_backend,
    trio_mock_clock,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator

pytestmark = pytest.mark.anyio


async def collect(
    stream: Any,
    into: list[Outcome[Any, Any]] | None = None,
    each: Callable[[Outcome[Any, Any]], Awaitable[object]] | None = None,
) -> list[Outcome[Any, Any]]:
    """Consume ``stream`` into ``into`` (kept even if it raises), awaiting ``each`` per outcome."""
    received = [] if into is None else into
    async with stream as outcomes:
        async for outcome in outcomes:
            received.append(outcome)
            if each is not None:
                await each(outcome)
    return received


async def _raise_key_error(_: object) -> None:
    raise KeyError("consumer")


async def _wait_forever(_: object) -> None:
    await anyio.Event().wait()


class Backwards:
    """Calls that finish in reverse input order once all of them have started."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.gates = [anyio.Event() for _ in range(n)]
        self.started: list[int] = []
        self.finished: list[int] = []

    async def __call__(self, i: int) -> str:
        self.started.append(i)
        if len(self.started) == self.n:
            self.gates[-1].set()
        await self.gates[i].wait()
        self.finished.append(i)
        if i:
            self.gates[i - 1].set()
        return f"v{i}"


@pytest.mark.parametrize("ordered", [False, True])
async def test_outcome_fields(ordered: bool) -> None:
    probe = Probe()
    jobs = [Job(0), Job(1, fails=True), Job(2, steps=2)]
    outcomes = await collect(anyfan.stream(probe, jobs, ordered=ordered))
    by_index = {o.index: o for o in outcomes}
    assert sorted(by_index) == [0, 1, 2]
    for job in jobs:
        outcome = by_index[job.index]
        assert outcome.item is job
        assert outcome.attempts == 1
        assert outcome.elapsed >= 0
        if job.fails:
            assert outcome.error is probe.raised[job.index]
            assert outcome.value is None
            assert not outcome.ok
        else:
            assert outcome.error is None
            assert outcome.value == job.value
    probe.assert_settled()


async def test_unordered_yields_as_calls_finish() -> None:
    calls = Backwards(5)
    outcomes = await collect(anyfan.stream(calls, range(5), concurrency=5))
    assert [o.index for o in outcomes] == [4, 3, 2, 1, 0]
    assert [o.value for o in outcomes] == ["v4", "v3", "v2", "v1", "v0"]


async def test_ordered_yields_in_input_order() -> None:
    calls = Backwards(5)
    outcomes = await collect(anyfan.stream(calls, range(5), concurrency=5, ordered=True))
    assert calls.finished == [4, 3, 2, 1, 0]
    assert [o.index for o in outcomes] == [0, 1, 2, 3, 4]
    assert [o.item for o in outcomes] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("ordered", [False, True])
@pytest.mark.parametrize("concurrency", [1, 4])
async def test_every_item_once_and_failures_do_not_stop_the_stream(
    ordered: bool, concurrency: int
) -> None:
    probe = Probe()
    jobs = [Job(i, steps=(i * 7) % 5, fails=i % 4 == 3) for i in range(40)]
    outcomes = await collect(anyfan.stream(probe, jobs, ordered=ordered, concurrency=concurrency))
    indices = [o.index for o in outcomes]
    assert sorted(indices) == list(range(40))
    if ordered:
        assert indices == list(range(40))
    assert {o.index: o.error for o in outcomes if not o.ok} == probe.raised
    assert probe.peak <= concurrency
    probe.assert_settled()


async def test_empty_input() -> None:
    assert await collect(anyfan.stream(Probe(), [])) == []


async def test_sync_callable_and_async_input() -> None:
    loop_thread = threading.get_ident()

    def call(i: int) -> int:
        assert threading.get_ident() != loop_thread
        return -i

    async def items() -> AsyncIterator[int]:
        for i in range(6):
            yield i

    outcomes = await collect(anyfan.stream(call, items(), ordered=True, concurrency=2))
    assert [o.value for o in outcomes] == [0, -1, -2, -3, -4, -5]


@pytest.mark.parametrize("ordered", [False, True])
async def test_breaking_out_of_an_endless_input_stops_everything(ordered: bool) -> None:
    probe = Probe()
    jobs = (Job(i, steps=i % 3) for i in itertools.count())
    seen: list[int] = []
    async with anyfan.stream(probe, jobs, concurrency=4, ordered=ordered) as outcomes:
        async for outcome in outcomes:
            seen.append(outcome.index)
            if len(seen) == 25:
                break
    assert len(set(seen)) == 25
    probe.assert_settled()
    started = len(probe.started)
    for _ in range(50):
        await anyio.lowlevel.checkpoint()
    assert len(probe.started) == started, "nothing starts after the block is left"


async def test_breaking_out_of_an_endless_async_generator() -> None:
    probe = Probe()

    async def jobs() -> AsyncGenerator[Job, None]:
        for i in itertools.count():
            yield Job(i, steps=1)

    async with aclosing(jobs()) as source, anyfan.stream(probe, source, concurrency=3) as outs:
        async for outcome in outs:
            if outcome.index >= 10:
                break
    probe.assert_settled()


async def test_leaving_early_closes_an_owned_async_iterator() -> None:
    state = {"closed": False}

    class Source:
        def __aiter__(self) -> AsyncIterator[Job]:
            return self.generate()

        async def generate(self) -> AsyncIterator[Job]:
            try:
                for i in itertools.count():
                    yield Job(i, steps=1)
            finally:
                state["closed"] = True

    async with anyfan.stream(Probe(), Source(), concurrency=2) as outcomes:
        async for _ in outcomes:
            break
    assert state["closed"]


@pytest.mark.parametrize("concurrency", [1, 3, 8])
async def test_items_are_pulled_lazily_even_with_a_slow_consumer(concurrency: int) -> None:
    probe = Probe()
    consumed = 0
    ahead: list[int] = []
    running: list[int] = []
    source = CountingInput(Job(i, steps=i % 4) for i in itertools.count())

    def on_pull(pulled: int) -> None:
        ahead.append(pulled - consumed)
        running.append(pulled - probe.ended)

    source.on_pull = on_pull
    async with anyfan.stream(probe, source, concurrency=concurrency) as outcomes:
        async for _ in outcomes:
            consumed += 1
            for _ in range(10):  # a slow consumer
                await anyio.lowlevel.checkpoint()
            if consumed == 50:
                break
    assert max(running) <= concurrency
    # One item per worker, four outcomes per worker held (a full buffer of two
    # plus the consumer's batch of up to two), and one more taken but not yet seen.
    assert max(ahead) <= 5 * concurrency + 1
    probe.assert_settled()


async def test_an_exception_in_the_body_propagates_unwrapped_and_stops_the_calls() -> None:
    probe = Probe()
    jobs = [Job(i, steps=1000) for i in range(3)] + [Job(3)]
    with pytest.raises(KeyError, match="consumer"):
        await collect(anyfan.stream(probe, jobs, concurrency=4), each=_raise_key_error)
    probe.assert_settled()
    assert sorted(probe.cancelled) == [0, 1, 2]


def _failing_items() -> Iterator[Job]:
    yield Job(0)
    yield Job(1, steps=1000)
    raise LookupError("input broke")


async def _failing_async_items() -> AsyncIterator[Job]:
    for job in _failing_items():
        yield job


@pytest.mark.parametrize("make_items", [_failing_items, _failing_async_items])
@pytest.mark.parametrize("ordered", [False, True])
async def test_a_failing_input_propagates_unwrapped(make_items: Any, ordered: bool) -> None:
    probe = Probe()
    seen: list[Outcome[Job, int]] = []
    stream = anyfan.stream(probe, make_items(), ordered=ordered, concurrency=2)
    with pytest.raises(LookupError, match="input broke"):
        await collect(stream, into=seen)
    assert [o.index for o in seen] in ([], [0])
    probe.assert_settled()


async def test_failures_are_outcomes_not_exceptions() -> None:
    outcomes = await collect(anyfan.stream(Probe(), [Job(0, fails=True)]))
    (outcome,) = outcomes
    with pytest.raises(Boom):
        outcome.unwrap()


async def test_fan_stream_shares_its_options() -> None:
    fan = anyfan.Fan(2)
    probe = Probe()
    outcomes = await collect(fan.stream(probe, [Job(i, steps=3) for i in range(8)], concurrency=9))
    assert len(outcomes) == 8
    assert probe.peak <= 2


class TestTimed:
    """Timeouts and deadlines (trio on a MockClock; asyncio waits on never-set events)."""

    @pytest.fixture(params=CLOCKED_BACKEND_IDS)
    def anyio_backend(self, request: pytest.FixtureRequest) -> Any:
        return clocked_backend(request.param)

    @staticmethod
    async def call(i: int) -> int:
        if i % 2:
            await anyio.Event().wait()  # never set
        return i

    async def test_timeout_is_an_outcome(self, backend_name: str) -> None:
        outcomes = await collect(anyfan.stream(self.call, range(4), timeout=0.05, ordered=True))
        assert [o.value for o in outcomes[0::2]] == [0, 2]
        assert all(type(o.error) is TimeoutError for o in outcomes[1::2])
        if backend_name == "trio":  # exact only on the test clock
            assert [o.elapsed for o in outcomes] == pytest.approx([0, 0.05, 0, 0.05])

    async def test_deadline_raises_after_the_finished_outcomes(self) -> None:
        seen: list[Outcome[int, int]] = []
        with pytest.raises(DeadlineExceeded) as info:
            await collect(anyfan.stream(self.call, range(6), deadline=0.05), into=seen)
        assert sorted(o.unwrap() for o in seen) == [0, 2, 4]
        # Everything that finished was already handed to the consumer.
        assert info.value.completed == {}

    async def test_deadline_also_bounds_the_consumer(self) -> None:
        seen: list[Outcome[int, int]] = []
        with pytest.raises(DeadlineExceeded):
            await collect(anyfan.stream(self.call, [0], deadline=0.05), seen, _wait_forever)
        assert [o.value for o in seen] == [0]


@pytest.mark.parametrize("anyio_backend", trio_mock_clock())
async def test_elapsed_is_the_calls_own_time() -> None:
    # Two streams share one slot: the wait for it does not count as elapsed time.
    fan = anyfan.Fan(1)

    async def call(seconds: float) -> float:
        await anyio.sleep(seconds)
        return seconds

    outcomes: list[Outcome[float, float]] = []
    async with anyio.create_task_group() as tg:
        for seconds in (1.5, 2.5):
            tg.start_soon(_extend, outcomes, fan.stream(call, [seconds, seconds]))
    assert sorted(o.elapsed for o in outcomes) == pytest.approx([1.5, 1.5, 2.5, 2.5])


async def _extend(outcomes: list[Any], stream: Any) -> None:
    outcomes.extend(await collect(stream))


@pytest.mark.parametrize(
    "route",
    ["buffer", "observer", "map observer", "call observer"],
    ids=["buffer", "observer", "map observer", "call observer"],
)
async def test_engine_built_outcomes_are_genuine_outcomes(route: str) -> None:
    """The engine builds outcomes its own faster way; they are Outcomes in every respect."""

    async def double(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return 2 * x

    seen: list[Outcome[int, int]] = []
    if route == "map observer":
        await anyfan.map(double, range(3), on_outcome=seen.append)
    elif route == "call observer":
        fan = anyfan.Fan(3)
        for x in range(3):
            await fan.call(double, x, on_outcome=seen.append)
    elif route == "observer":
        # An observer sends every outcome the slow way, through `_deliver`.
        await collect(anyfan.stream(double, range(3), on_outcome=seen.append))
    else:
        await collect(anyfan.stream(double, range(3)), seen)
    assert sorted(o.item for o in seen) == [0, 1, 2]
    # A single call is item 0 of its own; a fan-out numbers items by their place.
    assert [o.index for o in seen if o.index != o.item] == (
        [0, 0] if route == "call observer" else []
    )
    for outcome in seen:
        twin = Outcome(outcome.index, outcome.item, 2 * outcome.item, None, 1, outcome.elapsed)
        check_is_a_genuine_outcome(outcome, twin)


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_calls_that_never_suspend_still_let_other_tasks_run(concurrency: int) -> None:
    """The bounded buffer makes the workers wait for the consumer, who yields per batch."""

    async def instant(x: int) -> int:
        return x

    turns = 0

    async def sibling() -> None:
        nonlocal turns
        while True:
            turns += 1
            await anyio.lowlevel.checkpoint()

    seen = 0
    longest = 0  # outcomes taken in a row while the sibling had no turn
    async with anyio.create_task_group() as tg:
        tg.start_soon(sibling)
        await anyio.lowlevel.checkpoint()
        async with anyfan.stream(instant, itertools.count(), concurrency=concurrency) as outcomes:
            last_turns, run = turns, 0
            async for _ in outcomes:
                seen += 1
                run = run + 1 if turns == last_turns else 1
                last_turns = turns
                longest = max(longest, run)
                if seen == 1000:
                    break
        tg.cancel_scope.cancel()
    # The consumer reads at most one batch (two outcomes per worker) per turn it
    # gets, and trio may run it twice between two of the sibling's turns.
    assert longest <= 4 * concurrency


@pytest.mark.parametrize("shared", [False, True], ids=["anyfan.stream", "Fan.stream"])
async def test_a_misuse_inside_a_call_stops_the_stream_and_arrives_as_itself(
    shared: bool,
) -> None:
    async def call(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        if x == 3:
            raise Misuse("a mistake, not a failure")
        return x

    fan = anyfan.Fan(2)
    stream = fan.stream(call, range(100)) if shared else anyfan.stream(call, range(100))
    seen: list[Outcome[int, int]] = []
    with pytest.raises(Misuse, match="a mistake"):
        await collect(stream, seen)
    assert all(o.ok for o in seen)
    assert 3 not in {o.index for o in seen}
    if shared:
        assert fan.stats.cancelled >= 1
        assert fan.in_flight == 0


async def test_a_sync_call_that_outlives_the_deadline_has_its_result_dropped() -> None:
    # A thread cannot be interrupted: the call is waited for, then its late result dropped.
    # Real clocks only: a MockClock would autojump while the (untracked) thread runs.
    started, release = threading.Event(), threading.Event()

    def call(i: int) -> int:
        if i == 1:
            started.set()
            release.wait(30)  # a hang guard only: the test sets it
        return i

    async def release_after_the_deadline() -> None:
        await anyio.to_thread.run_sync(started.wait, 30)
        await anyio.sleep(0.1)  # twice the deadline, counted from after it began
        release.set()

    seen: list[Outcome[int, int]] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(release_after_the_deadline)
        with pytest.raises(DeadlineExceeded):
            await collect(anyfan.stream(call, [0, 1], concurrency=2, deadline=0.05), seen)
    assert [o.index for o in seen] == [0]


@pytest.mark.parametrize("observed", [False, True], ids=["async input", "observer"])
async def test_instant_calls_fill_the_buffer_and_leaving_cancels_the_waiting_writers(
    observed: bool,
) -> None:
    """The general worker (async input, or an observer): same buffer, same bounds."""

    async def instant(x: int) -> int:
        return x

    async def endless() -> AsyncGenerator[int, None]:
        for i in itertools.count():
            yield i

    seen: list[Outcome[int, int]] = []
    observer = seen.append if observed else None
    async with aclosing(endless()) as source:
        items = itertools.count() if observed else source
        async with anyfan.stream(instant, items, concurrency=2, on_outcome=observer) as outcomes:
            taken = 0
            async for outcome in outcomes:
                assert outcome.value == outcome.index
                taken += 1
                if taken == 100:
                    await anyio.wait_all_tasks_blocked()
                    break  # the writers are waiting on a full buffer by now
    if observed:
        # Observed as delivered: the 100 taken, and at most two buffers more.
        assert 100 <= len(seen) <= 100 + 4 * 2


async def test_the_duration_clock_is_the_loops_clock_less_its_offset() -> None:
    """Durations are read with a C clock when the loop's clock is that clock plus an offset."""
    import time

    from anyfan._core._clock import duration_clock, loop_token, native_clock

    now, tick = native_clock(loop_token()), duration_clock(loop_token())
    if anyio.lowlevel.current_token().native_token.__class__.__module__.startswith("trio"):
        import trio

        # trio's default clock is ``offset + perf_counter()``: the same durations.
        assert tick is time.perf_counter
        assert now == trio.lowlevel.current_clock().current_time
    else:
        assert tick is now is time.monotonic


@pytest.mark.parametrize("anyio_backend", trio_mock_clock())
async def test_a_test_clock_times_the_calls_of_a_one_shot_stream() -> None:
    """Not perf_counter: a MockClock's durations are its own, exact, on every route."""

    async def call(seconds: float) -> float:
        await anyio.sleep(seconds)
        return seconds

    outcomes = await collect(anyfan.stream(call, [3.0, 0.5], concurrency=1))
    assert [o.elapsed for o in outcomes] == [3.0, 0.5]


class Gated:
    """Calls that each wait for their own gate; ``done`` counts those that returned."""

    def __init__(self, n: int) -> None:
        self.gates = [anyio.Event() for _ in range(n)]
        self.done = 0

    async def __call__(self, i: int) -> int:
        await self.gates[i].wait()
        self.done += 1
        return i


@pytest.mark.parametrize("shared", [False, True], ids=["anyfan.stream", "Fan.stream"])
async def test_a_second_async_for_carries_on_where_a_break_left_off(shared: bool) -> None:
    def double(x: int) -> int:
        return 2 * x

    async def instant(x: int) -> int:
        return double(x)

    stream = anyfan.Fan(4).stream if shared else anyfan.stream
    seen: list[int] = []
    async with stream(instant, range(50), concurrency=4) as outcomes:
        async for outcome in outcomes:
            seen.append(outcome.index)
            if len(seen) == 7:
                break
        assert len(seen) == 7
        seen.append(-1)  # a marker between the two loops
        # `anext` and `async for` read the same outcomes, and can be mixed.
        seen.append((await anext(outcomes)).index)
        async for outcome in outcomes:
            seen.append(outcome.index)
    assert seen[7] == -1
    assert sorted(seen[:7] + seen[8:]) == list(range(50))


async def test_a_cancelled_wait_for_an_outcome_loses_nothing() -> None:
    calls = Gated(3)
    got: list[int] = []
    async with anyfan.stream(calls, range(3)) as outcomes:
        with anyio.CancelScope() as scope:
            scope.cancel()
            async for outcome in outcomes:  # cancelled while it waits for the first
                got.append(outcome.index)
        assert scope.cancelled_caught
        for gate in calls.gates:
            gate.set()
        async for outcome in outcomes:  # a new reader carries on
            got.append(outcome.index)
    assert sorted(got) == [0, 1, 2]


async def test_leaving_after_a_break_closes_the_reader() -> None:
    """Closed by the stream itself, not by the event loop's finaliser (trio warns then)."""
    seen: list[int] = []
    async with anyfan.stream(_identity, range(10), concurrency=2) as outcomes:
        reader = aiter(outcomes)
        async for outcome in reader:
            seen.append(outcome.value)
            break
    assert len(seen) == 1
    with pytest.raises(StopAsyncIteration):
        await anext(reader)


async def test_a_reader_another_task_is_inside_is_left_to_end_by_itself() -> None:
    calls = Gated(2)
    got: list[int] = []
    first, ended = anyio.Event(), anyio.Event()

    async def consume(outcomes: Any) -> None:
        async for outcome in outcomes:
            got.append(outcome.value)
            first.set()
        ended.set()

    async with anyio.create_task_group() as tg:
        async with anyfan.stream(calls, range(2)) as outcomes:
            tg.start_soon(consume, outcomes)
            calls.gates[0].set()
            await first.wait()
            # The consumer is now inside the reader, waiting for the second outcome;
            # leaving cancels its call, closes the buffer, and the reader then ends.
        await ended.wait()
    assert got == [0]
    assert calls.done == 1


async def _identity(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return x


async def test_a_fans_stream_keeps_exact_stats_and_a_one_shot_stream_the_same_outcomes() -> None:
    """A Fan's stats count every call; a one-shot stream, whose stats nobody can read,
    skips them and hands out the same outcomes."""

    async def odd_fails(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        if x % 2:
            raise Boom(x)
        return x

    fan = anyfan.Fan(3)
    shared = await collect(fan.stream(odd_fails, range(9)))
    alone = await collect(anyfan.stream(odd_fails, range(9), concurrency=3))
    stats = fan.stats
    assert (stats.started, stats.succeeded, stats.failed, stats.in_flight) == (9, 5, 4, 0)
    for outcomes in (shared, alone):
        assert sorted(o.index for o in outcomes if o.ok) == [0, 2, 4, 6, 8]
        assert sorted(o.index for o in outcomes if isinstance(o.error, Boom)) == [1, 3, 5, 7]
