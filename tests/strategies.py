"""Hypothesis strategies and the helpers that play them, shared by the test suite.

Append-only: each layer adds its own clearly headed section below.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import pickle
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import strategies as st

from anyfan import Outcome

if TYPE_CHECKING:
    from collections.abc import Iterator

# --- core engine ---

HAS_TRIO = importlib.util.find_spec("trio") is not None
HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None

#: ``(name, anyio.run backend, backend options)`` for every backend installed here.
RUN_BACKENDS: list[tuple[str, str, dict[str, Any]]] = [("asyncio", "asyncio", {})]
if HAS_UVLOOP:
    RUN_BACKENDS.append(("asyncio+uvloop", "asyncio", {"use_uvloop": True}))
if HAS_TRIO:
    RUN_BACKENDS.append(("trio", "trio", {}))

#: Ids for `clocked_backend`, one per installed backend.
CLOCKED_BACKEND_IDS = [name for name, _, _ in RUN_BACKENDS]


def clocked_backend(name: str) -> tuple[str, dict[str, Any]]:
    """Return an ``anyio_backend`` value whose trio flavour runs on an autojumping MockClock.

    Sleeps and timeouts on trio then take no real time and give exact
    durations. asyncio keeps its real clock, so tests using this must pass
    whatever the real timing (e.g. wait on events that are never set).
    """
    if name == "trio":
        from trio.testing import MockClock

        return ("trio", {"clock": MockClock(autojump_threshold=0)})
    if name == "asyncio+uvloop":
        return ("asyncio", {"use_uvloop": True})
    return ("asyncio", {})


class Boom(Exception):
    """The failure a scripted job raises."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


@dataclass(frozen=True)
class Job:
    """One scripted item: its index, scheduling steps before it ends, and whether it fails."""

    index: int
    steps: int = 0
    fails: bool = False

    @property
    def value(self) -> int:
        """What the call returns when the job succeeds."""
        return self.index * 10


def jobs(*, max_size: int = 25, max_steps: int = 6) -> st.SearchStrategy[list[Job]]:
    """Lists of jobs with random per-item delays (in scheduling steps) and failures."""
    spec = st.tuples(st.integers(0, max_steps), st.booleans())
    return st.lists(spec, max_size=max_size).map(
        lambda specs: [Job(i, steps, fails) for i, (steps, fails) in enumerate(specs)]
    )


concurrencies = st.integers(1, 6)
error_policies = st.sampled_from(("raise", "collect", "return"))


@dataclass
class Probe:
    """Plays `Job` items as calls, counting the calls in flight and recording their fates.

    ``await probe(job)`` is the async call; ``probe.sync(job)`` the thread-safe
    sync one. ``on_end`` (if set) runs after each call ends, whatever the end.
    """

    active: int = 0
    peak: int = 0
    started: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    raised: dict[int, BaseException] = field(default_factory=dict)
    ended: int = 0
    on_end: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _enter(self, job: Job) -> None:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.started.append(job.index)

    def _leave(self) -> None:
        with self.lock:
            self.active -= 1
            self.ended += 1
        if self.on_end is not None:
            self.on_end()

    def _finish(self, job: Job) -> int:
        if job.fails:
            error = Boom(job.index)
            self.raised[job.index] = error
            raise error
        self.finished.append(job.index)
        return job.value

    async def __call__(self, job: Job) -> int:
        self._enter(job)
        try:
            for _ in range(job.steps):
                await anyio.lowlevel.checkpoint()
            return self._finish(job)
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(job.index)
            raise
        finally:
            self._leave()

    def sync(self, job: Job) -> int:
        """The same call, for running in a worker thread (``steps`` are ignored)."""
        self._enter(job)
        try:
            with self.lock:
                return self._finish(job)
        finally:
            self._leave()

    def assert_settled(self) -> None:
        """Assert that nothing runs and each call started once and ended once, in one way."""
        assert self.active == 0
        assert self.ended == len(self.started)
        assert len(set(self.started)) == len(self.started)
        assert len(self.finished) + len(self.cancelled) + len(self.raised) == self.ended


@dataclass
class CountingInput:
    """A sync iterable over ``items`` that records how many were pulled.

    With ``sized``, its iterator tells how many items are left
    (``__length_hint__``), as a list's does; a run then starts its workers at
    once instead of growing them as items come.
    """

    items: Any
    pulled: int = 0
    on_pull: Any = None
    sized: bool = False

    def __iter__(self) -> Iterator[Any]:
        pulls = self._pulls()
        return _Telling(pulls, len(self.items)) if self.sized else pulls

    def _pulls(self) -> Iterator[Any]:
        for item in self.items:
            self.pulled += 1
            if self.on_pull is not None:
                self.on_pull(self.pulled)
            yield item


class _Telling:
    """An iterator over ``items`` that says how many it has left, ``left`` to begin with."""

    def __init__(self, items: Iterator[Any], left: int) -> None:
        self._items = items
        self._left = left

    def __iter__(self) -> _Telling:
        return self

    def __next__(self) -> Any:
        item = next(self._items)
        self._left -= 1
        return item

    def __length_hint__(self) -> int:
        return self._left


def trio_mock_clock() -> list[Any]:
    """``anyio_backend`` params for trio on a fresh autojumping MockClock (none without trio).

    For tests whose timings must be exact, which only a test clock gives.
    """
    if not HAS_TRIO:
        return []
    return [pytest.param(clocked_backend("trio"), id="trio-mockclock")]


class Crowd:
    """Async calls that each wait until ``size`` of them are in flight at once.

    So a test can assert a limit is *reached* as well as kept, without
    relying on how the scheduler interleaves ramp-up. Create inside the loop.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.active = 0
        self.peak = 0
        self.calls = 0
        self.full = anyio.Event()

    async def __call__(self, item: Any) -> Any:
        self.active += 1
        self.calls += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.active >= self.size:
                self.full.set()
            await self.full.wait()
            await anyio.lowlevel.checkpoint()
            return item
        finally:
            self.active -= 1


# --- batch jobs (anyfan.batch) ---

#: Custom ids, often colliding, often shaped like the ``line-N`` ids of bare bodies.
batch_custom_ids = st.one_of(
    st.integers(min_value=1, max_value=30).map(lambda n: f"line-{n}"),
    st.sampled_from(["a", "b", "line-0", "line-01", "line-", "é", "\ud800"]),
    st.text(min_size=1, max_size=8),
)

#: One line of a batch input: a bare body (``None``) or a Batch-shaped line's custom id.
batch_line_ids = st.lists(st.none() | batch_custom_ids, max_size=40)

#: Request latencies in seconds, from zero to hours, as a batch job records them.
batch_latencies = st.floats(min_value=0, max_value=20_000, allow_nan=False)

# --- limits and retries ---

#: Rates as (limit, per): requests per second up to tokens per minute.
rate_specs = st.tuples(
    st.floats(min_value=1, max_value=5_000, allow_nan=False, allow_infinity=False),
    st.sampled_from((0.5, 1.0, 2.0, 60.0)),
).filter(lambda spec: 0.5 <= spec[0] / spec[1] <= 5_000)

#: Explicit bursts (units), or None for the default.
bursts = st.none() | st.floats(min_value=0.5, max_value=5_000, allow_nan=False)


@dataclass(frozen=True)
class Demand:
    """One call in a limiter simulation: its cost, and what happens around it.

    ``gap`` is how long after the previous admission the call is asked for
    (0 = demand exceeds the limit); ``late`` is how late the waiter wakes
    after its earliest allowed start (timer lateness); ``used`` is the share
    of its estimate the call really uses, settled ``after`` seconds later.
    """

    cost: float
    gap: float
    late: float
    used: float
    after: float


def demands(*, max_cost: int = 4_000, max_size: int = 120) -> st.SearchStrategy[list[Demand]]:
    """Call sequences with random costs, idle gaps, lateness and refunds."""
    one = st.builds(
        Demand,
        cost=st.integers(0, max_cost).map(float),
        gap=st.sampled_from((0.0, 0.0, 0.0, 0.001, 0.05, 0.5, 3.0)),
        late=st.sampled_from((0.0, 0.0, 0.0001, 0.003, 0.02)),
        used=st.sampled_from((1.0, 1.0, 0.0, 0.25, 0.5, 0.9)),
        after=st.sampled_from((0.0, 0.001, 0.01, 0.2, 2.0)),
    )
    return st.lists(one, min_size=1, max_size=max_size)


#: Window lengths (seconds, all >= 1) over which the window bound is checked.
bound_windows = st.sampled_from((1.0, 1.25, 1.5, 2.0, 3.7, 10.0))

#: Uniform draws in [0, 1) for jitter, as ``random.random`` would give them.
unit_draws = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)

#: Server-directed delays as ``delay_hint`` functions return them.
delay_hints = st.none() | st.floats(min_value=-5.0, max_value=500.0, allow_nan=False)

# --- OpenAI adapter (anyfan.openai) ---

_GO_UNIT_SECONDS = {
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "ns": 1e-9,
}


@st.composite
def _go_duration(draw: st.DrawFn) -> tuple[str, float]:
    units = draw(st.lists(st.sampled_from(sorted(_GO_UNIT_SECONDS)), min_size=1, max_size=4))
    text, seconds = "", 0.0
    for unit in units:
        whole = draw(st.integers(0, 10_000))
        fraction = draw(st.none() | st.integers(0, 999))
        number = str(whole) if fraction is None else f"{whole}.{fraction:03d}"
        text += number + unit
        seconds += float(number) * _GO_UNIT_SECONDS[unit]
    return text, seconds


#: Go-style durations (``"6m0s"``, ``"1.5ms20ns"``) with the seconds they stand for.
go_durations = _go_duration()

_prompt_texts = st.text(max_size=60)
_content_parts = st.lists(
    st.fixed_dictionaries({"type": st.just("text"), "text": _prompt_texts})
    | st.fixed_dictionaries(
        {"type": st.just("image_url"), "image_url": st.just({"url": "https://x/y.png"})}
    ),
    max_size=3,
)

#: Chat completion requests as SDK keyword dicts (and JSON bodies): texts, parts, budgets, n.
openai_chat_requests = st.fixed_dictionaries(
    {
        "model": st.just("gpt-4o-mini"),
        "messages": st.lists(
            st.fixed_dictionaries(
                {
                    "role": st.sampled_from(["system", "user", "assistant"]),
                    "content": _prompt_texts | _content_parts,
                }
            ),
            min_size=1,
            max_size=5,
        ),
    },
    optional={
        "max_tokens": st.integers(1, 4096),
        "max_completion_tokens": st.integers(1, 4096),
        "n": st.integers(1, 4),
    },
)

_token_ids = st.lists(st.integers(0, 100_000), min_size=1, max_size=20)

#: Legacy completions requests: a text, texts, token ids or lists of them.
openai_completion_requests = st.fixed_dictionaries(
    {
        "model": st.just("gpt-3.5-turbo-instruct"),
        "prompt": _prompt_texts
        | st.lists(_prompt_texts, min_size=1, max_size=4)
        | _token_ids
        | st.lists(_token_ids, min_size=1, max_size=3),
    },
    optional={"max_tokens": st.integers(1, 512), "n": st.integers(1, 3)},
)

_input_texts = st.text(min_size=1, max_size=60)

#: Embeddings requests: a text, texts, token ids or lists of them.
openai_embedding_requests = st.fixed_dictionaries(
    {
        "model": st.just("text-embedding-3-small"),
        "input": _input_texts
        | st.lists(_input_texts, min_size=1, max_size=4)
        | _token_ids
        | st.lists(_token_ids, min_size=1, max_size=3),
    }
)


# --- anyfan run (anyfan.batch._send) ---

#: A response's ``usage`` numbers, as the sender picks them out of the raw bytes.
usage_numbers = st.fixed_dictionaries(
    {"prompt_tokens": st.integers(0, 10**9), "total_tokens": st.integers(0, 10**9)}
)


# --- single calls (Fan.call) mixed with map and stream ---


class Flaky(ConnectionError):
    """A retryable failure of a scripted call's early attempts."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


@dataclass(frozen=True)
class Scripted:
    """One item of a mixed workload: steps per attempt, retryable failures first, then its fate.

    ``flaky`` attempts fail with `Flaky` (retryable) before the item either
    fails for good with `Boom` (``fails``) or returns ``value``.
    """

    index: int
    steps: int = 0
    flaky: int = 0
    fails: bool = False

    @property
    def value(self) -> int:
        return self.index * 10


@dataclass(frozen=True)
class Op:
    """One concurrent use of a Fan: ``kind`` is ``"call"``, ``"map"`` or ``"stream"``."""

    kind: str
    items: tuple[Scripted, ...]


@st.composite
def _workload(draw: st.DrawFn, max_ops: int, max_items: int) -> list[Op]:
    kinds = draw(st.lists(st.sampled_from(("call", "call", "map", "stream")), max_size=max_ops))
    ops: list[Op] = []
    index = 0
    for kind in kinds:
        size = 1 if kind == "call" else draw(st.integers(0, max_items))
        items = []
        for _ in range(size):
            steps, flaky, fails = draw(
                st.tuples(st.integers(0, 4), st.integers(0, 3), st.booleans())
            )
            items.append(Scripted(index, steps, flaky, fails))
            index += 1
        ops.append(Op(kind, tuple(items)))
    return ops


def workloads(*, max_ops: int = 8, max_items: int = 6) -> st.SearchStrategy[list[Op]]:
    """Mixes of concurrent calls, maps and streams over scripted items with retries."""
    return _workload(max_ops, max_items)


@dataclass
class Player:
    """Plays `Scripted` items, counting calls in flight (the peak) and attempts per item."""

    active: int = 0
    peak: int = 0
    attempts: dict[int, int] = field(default_factory=dict)
    #: ``("start", index, attempt)`` and ``("ok", index, attempt)``, in the order they happened.
    log: list[tuple[str, int, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, item: Scripted) -> int:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            n = self.attempts[item.index] = self.attempts.get(item.index, 0) + 1
            self.log.append(("start", item.index, n))
        try:
            for _ in range(item.steps):
                await anyio.lowlevel.checkpoint()
            if n <= item.flaky:
                raise Flaky(item.index)
            if item.fails:
                raise Boom(item.index)
            with self.lock:
                self.log.append(("ok", item.index, n))
            return item.value
        finally:
            with self.lock:
                self.active -= 1


# --- stream: outcomes the engine builds ---


def check_is_a_genuine_outcome(outcome: Outcome[Any, Any], twin: Outcome[Any, Any]) -> None:
    """``outcome`` behaves in every way like ``twin``, built by calling the class."""
    assert type(outcome) is Outcome
    assert isinstance(outcome, Outcome)
    assert outcome == twin
    assert hash(outcome) == hash(twin)
    assert repr(outcome) == repr(twin)
    assert not hasattr(outcome, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.value = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del outcome.index
    assert dataclasses.astuple(outcome) == dataclasses.astuple(twin)
    changed = dataclasses.replace(outcome, attempts=5)
    assert type(changed) is Outcome
    assert changed == dataclasses.replace(twin, attempts=5)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(outcome, protocol))
        assert type(back) is Outcome
        assert back == twin
