"""Section ``core`` (issue 1/5): per-item scheduling overhead and peak RSS of a fan-out.

Every approach maps ``async def noop(x): return x`` over N items at a fixed
concurrency. Each measurement runs in a fresh interpreter (this file, run with
``--child``), so the peak RSS it reports belongs to that one case alone.
"""

from __future__ import annotations

import functools
import importlib
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness
from _harness import Target, count, mb

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable

TITLE = "Core engine: per-item overhead and memory"
ORDER = 10

THIS = Path(__file__).resolve()

#: Imported by every child, measured or baseline, so baselines compare like with like.
COMMON_MODULES = ("anyio", "anyfan", "aiometer", "trio", "uvloop")

MAX_US_PER_ITEM = 3.0
#: anyfan.map and anyfan.stream on a call that suspends once, over the hand-written floor.
MAX_TIMES_SUSPEND_FLOOR = 1.25

#: The rows that target compares, floor first: timed paired in one interpreter at every size.
JUDGED = ("suspend_floor", "suspend_map", "suspend_stream")
#: Paired rounds at each size (the first size, then the larger ones): each round runs
#: every judged row once, in alternating order, and the target takes the median of
#: the rounds' ratios.
PAIRED_ROUNDS = (25, 15)
MIN_TIMES_BELOW_AIOMETER = 8.0
MAX_RSS_OVER_BASELINE = 100e6


# -- the approaches, run inside a child --------------------------------------


async def noop(x: int) -> int:
    return x


async def work(x: int) -> int:
    """A call that suspends once, as every real call does."""
    # anyio is imported at module level: an import statement here would cost
    # every row, the floor included, a lookup per call.
    await anyio.sleep(0)
    return x


async def suspend_floor(n: int, c: int) -> list[int]:
    """The hand-written floor: ``c`` plain tasks sharing one iterator."""
    out: list[int] = [0] * n
    items = iter(range(n))

    async def worker() -> None:
        for i in items:
            out[i] = await work(i)

    async with anyio.create_task_group() as tg:
        for _ in range(c):
            tg.start_soon(worker)
    return out


async def suspend_map(n: int, c: int) -> list[int]:
    import anyfan

    return await anyfan.map(work, range(n), concurrency=c)


async def suspend_stream(n: int, c: int) -> int:
    import anyfan

    got = 0
    async with anyfan.stream(work, range(n), concurrency=c) as outcomes:
        async for _ in outcomes:
            got += 1
    return got


async def suspend_handoff(n: int, c: int) -> int:
    """A stream written by hand: ``c`` tasks send ``(i, result)`` to one consumer."""
    send, receive = anyio.create_memory_object_stream[tuple[int, int]](4 * c)
    items = iter(range(n))
    got = 0

    async def worker(send: Any) -> None:
        async with send:
            for i in items:
                await send.send((i, await work(i)))

    async with anyio.create_task_group() as tg:
        async with send:
            for _ in range(c):
                tg.start_soon(worker, send.clone())
        async with receive:
            async for _ in receive:
                got += 1
    return got


async def suspend_lean(n: int, c: int) -> int:
    """The leanest correct stream by hand: tasks append ``(i, result)`` to a deque.

    The consumer drains the deque in a plain loop and waits on an event only
    when it is empty: no record object, no clock, no stats, no bound on the
    buffer and no coroutine per result. Any stream costs at least this.
    """
    ready: deque[tuple[int, int]] = deque()
    items = iter(range(n))
    wake: anyio.Event | None = None
    live = c
    got = 0

    async def worker() -> None:
        nonlocal wake, live
        try:
            for i in items:
                ready.append((i, await work(i)))
                if wake is not None:
                    wake.set()
                    wake = None
        finally:
            live -= 1
            if not live and wake is not None:
                wake.set()
                wake = None

    async with anyio.create_task_group() as tg:
        for _ in range(c):
            tg.start_soon(worker)
        while True:
            while ready:
                ready.popleft()
                got += 1
            if not live:
                break
            wake = anyio.Event()
            await wake.wait()
    return got


async def sequential(n: int, c: int) -> list[int]:
    return [await noop(i) for i in range(n)]


async def anyfan_map(n: int, c: int) -> list[int]:
    import anyfan

    return await anyfan.map(noop, range(n), concurrency=c)


async def anyfan_stream(n: int, c: int) -> int:
    import anyfan

    seen = 0
    async with anyfan.stream(noop, range(n), concurrency=c) as outcomes:
        async for _ in outcomes:
            seen += 1
    return seen


#: Failures in the ``except*`` case (issue 9/5: quadratic ``FanError.derive``
#: took about 1.1 s at 2,000 and would take about 28 s at 10,000).
EXCEPT_STAR_FAILURES = 10_000


async def anyfan_except_star(n: int, c: int) -> int:
    import anyfan

    every = max(1, n // EXCEPT_STAR_FAILURES)

    async def sometimes_fails(x: int) -> int:
        if x % every == 0:
            raise (ValueError if x // every % 2 else KeyError)(x)
        return x

    caught = 0
    try:
        await anyfan.map(sometimes_fails, range(n), concurrency=c, errors="collect")
    except* ValueError as group:
        caught += len(group.exceptions)
    except* KeyError as group:
        caught += len(group.exceptions)
    # Every item accounted for: the successes plus each failure caught once.
    return (n - len(range(0, n, every))) + caught


async def gather_semaphore(n: int, c: int) -> list[int]:
    import asyncio

    semaphore = asyncio.Semaphore(c)

    async def guarded(x: int) -> int:
        async with semaphore:
            return await noop(x)

    return await asyncio.gather(*(guarded(i) for i in range(n)))


async def anyio_task_group(n: int, c: int) -> list[int]:
    limiter = anyio.CapacityLimiter(c)
    results = [0] * n

    async def one(i: int) -> None:
        async with limiter:
            results[i] = await noop(i)

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    return results


async def anyio_amap(n: int, c: int) -> list[int]:
    # amap takes no limit: c cannot be applied.
    amap: Callable[..., Awaitable[list[int]]] = anyio.amap  # absent before anyio 4.16
    return await amap(noop, range(n))


async def aiometer_amap(n: int, c: int) -> int:
    import aiometer

    seen = 0
    async with aiometer.amap(noop, range(n), max_at_once=c) as results:
        async for _ in results:
            seen += 1
    return seen


async def aiometer_run_all(n: int, c: int) -> list[int]:
    import aiometer

    calls = [functools.partial(noop, i) for i in range(n)]
    results: list[int] = await aiometer.run_all(calls, max_at_once=c)
    return results


async def trio_nursery(n: int, c: int) -> list[int]:
    import trio

    limiter = trio.CapacityLimiter(c)
    results = [0] * n

    async def one(i: int) -> None:
        async with limiter:
            results[i] = await noop(i)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
    return results


@dataclass(frozen=True)
class Case:
    """One approach and the backends it runs on."""

    key: str
    label: str
    backends: tuple[str, ...]
    fn: Callable[[int, int], Awaitable[Any]] | None  # None: the baseline, which does nothing
    ordered: bool = True  # returns the results in input order (else: a count)
    #: Backends run above the first size (None: all). Slow peers are left out there
    #: by default, to keep the whole section near ten minutes.
    large_backends: tuple[str, ...] | None = None
    anyfan: bool = False
    available: Callable[[], bool] = field(default=lambda: True)


def _has_anyio_amap() -> bool:
    return hasattr(anyio, "amap")


CASES = (
    Case("baseline", "interpreter baseline (imports, loop, one task)", _harness.BACKENDS, None),
    Case("sequential", "sequential awaits (floor)", ("asyncio", "trio"), sequential),
    Case("anyfan_map", "**anyfan.map**", _harness.BACKENDS, anyfan_map, anyfan=True),
    Case(
        "anyfan_stream",
        "**anyfan.stream** (unordered)",
        ("asyncio", "trio"),
        anyfan_stream,
        ordered=False,
        anyfan=True,
    ),
    Case(
        "anyfan_except_star",
        f"anyfan.map, {EXCEPT_STAR_FAILURES:,} failures caught with `except*`",
        ("asyncio", "trio"),
        anyfan_except_star,
        ordered=False,
        large_backends=(),
    ),
    Case("gather", "asyncio.gather + Semaphore", ("asyncio",), gather_semaphore),
    Case(
        "aiometer_amap",
        "aiometer.amap (max_at_once)",
        ("asyncio", "trio"),
        aiometer_amap,
        ordered=False,
        large_backends=("asyncio",),
    ),
    Case(
        "aiometer_run_all",
        "aiometer.run_all (max_at_once)",
        ("asyncio", "trio"),
        aiometer_run_all,
        large_backends=("asyncio",),
    ),
    Case(
        "trio_nursery",
        "trio nursery + CapacityLimiter",
        ("trio",),
        trio_nursery,
        large_backends=(),
    ),
    Case(
        "anyio_amap",
        "anyio.amap (no limit)",
        ("asyncio", "trio"),
        anyio_amap,
        large_backends=(),
        available=_has_anyio_amap,
    ),
    Case(
        "anyio_task_group",
        "anyio task group + CapacityLimiter",
        ("asyncio", "trio"),
        anyio_task_group,
        large_backends=(),
    ),
    Case(
        "suspend_floor",
        "suspending call: tasks sharing one iterator (floor)",
        ("asyncio", "trio"),
        suspend_floor,
    ),
    Case(
        "suspend_map",
        "suspending call: **anyfan.map**",
        ("asyncio", "trio"),
        suspend_map,
    ),
    Case(
        "suspend_stream",
        "suspending call: **anyfan.stream** (unordered)",
        ("asyncio", "trio"),
        suspend_stream,
        ordered=False,
    ),
    Case(
        "suspend_lean",
        "suspending call: the same stream written lean by hand (a deque, one consumer)",
        ("asyncio", "trio"),
        suspend_lean,
        ordered=False,
    ),
    Case(
        "suspend_handoff",
        "suspending call: tasks sending to one consumer on an anyio memory stream",
        ("asyncio", "trio"),
        suspend_handoff,
        ordered=False,
    ),
)
CASES_BY_KEY = {case.key: case for case in CASES}


def _import_common() -> list[str]:
    imported = []
    for name in COMMON_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        imported.append(name)
    return imported


def _correct(case: Case, result: Any, n: int) -> bool:
    if case.ordered:
        # Compared lazily: a second list of N ints would inflate the peak RSS.
        return len(result) == n and all(a == b for a, b in zip(result, range(n), strict=True))
    return bool(result == n)


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one case once in this (fresh) interpreter and time it; or, given
    ``paired``, time those cases in rounds (`paired_child`)."""
    if "paired" in spec:
        return paired_child(spec)
    imported = _import_common()
    case = CASES_BY_KEY[spec["case"]]
    n, c = spec["n"], spec["concurrency"]
    fn = case.fn

    async def main() -> tuple[float, Any]:
        # Load anyio's backend module (imported on first use) in every child,
        # baseline included, so no timed run pays for an import.
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep, 0)
        if fn is None:
            return 0.0, None
        # A small warm-up run, untimed, so first-call costs stay out of the timing.
        await fn(min(n, 2 * c), c)
        start = time.perf_counter()
        result = await fn(n, c)
        return time.perf_counter() - start, result

    seconds, result = _harness.run_on(spec["backend"], main)
    ok = True if fn is None else _correct(case, result, n)
    return {"seconds": seconds, "ok": ok, "imported": imported}


def paired_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Time the cases ``paired`` in one interpreter: every case once per round, many rounds.

    The first case, the one the others are compared with, runs in the middle
    of each round, next to each of them, and rounds alternate the order
    (B A C, then C A B), so neither what ran just before nor the machine's
    drift favours one case. Runs next to each other are seconds apart, so the
    ratio of two within a round leaves out most of the load a shared machine
    puts on separate processes minutes apart. Returns each case's seconds, in
    round order.
    """
    _import_common()
    keys = spec["paired"]
    middle = len(keys) // 2
    cases = [CASES_BY_KEY[key] for key in [*keys[1 : middle + 1], keys[0], *keys[middle + 1 :]]]
    n, c, rounds = spec["n"], spec["concurrency"], spec["rounds"]

    async def main() -> tuple[dict[str, list[float]], bool]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep, 0)
        seconds: dict[str, list[float]] = {case.key: [] for case in cases}
        ok = True
        for case in cases:
            assert case.fn is not None
            await case.fn(2 * c, c)  # untimed warm-up, as in `child`
        for round_ in range(rounds):
            for case in cases if round_ % 2 == 0 else cases[::-1]:
                assert case.fn is not None
                start = time.perf_counter()
                result = await case.fn(n, c)
                seconds[case.key].append(time.perf_counter() - start)
                ok = ok and _correct(case, result, n)
                del result  # before the next case runs, as in a process of its own
        return seconds, ok

    seconds, ok = _harness.run_on(spec["backend"], main)
    return {"seconds": seconds, "ok": ok}


# -- the section, built in the parent ----------------------------------------


def add_arguments(parser: argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--core-sizes",
        metavar="N,N",
        help="item counts; the first runs --core-repeats times, the others once "
        "(default 100000,1000000; with --quick 1000,10000)",
    )
    parser.add_argument(
        "--core-repeats",
        type=int,
        metavar="R",
        help="runs at the first size (default 3; --quick 1)",
    )
    parser.add_argument(
        "--core-paired-rounds",
        type=int,
        metavar="R",
        help="rounds of the suspending call's floor, anyfan.map and anyfan.stream, timed "
        f"paired in one interpreter, that the {MAX_TIMES_SUSPEND_FLOOR:g}x target is judged on "
        f"(default {PAIRED_ROUNDS[0]} at the first size, {PAIRED_ROUNDS[1]} above; --quick 1)",
    )
    parser.add_argument(
        "--core-concurrency", type=int, default=100, metavar="C", help="default 100"
    )
    parser.add_argument(
        "--core-all-sizes",
        action="store_true",
        help="also run the slow peers at the larger sizes (many minutes, several GB)",
    )
    parser.add_argument(
        "--core-timeout",
        type=float,
        default=900.0,
        metavar="S",
        help="seconds before one run is abandoned (default 900)",
    )


@dataclass
class Cell:
    """The runs of one case on one backend at one size."""

    seconds: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None

    @property
    def measured(self) -> bool:
        return bool(self.seconds) and self.error is None


@dataclass
class Paired:
    """The judged rows' runs in one interpreter: each key's seconds, in round order."""

    rounds: int
    seconds: dict[str, list[float]] = field(default_factory=dict)
    error: str | None = None

    def ratios(self, key: str) -> list[float]:
        """Each round's run of ``key`` over the same round's floor run."""
        return [
            mine / floor
            for mine, floor in zip(self.seconds[key], self.seconds[JUDGED[0]], strict=True)
        ]

    def say(self, n: int) -> str:
        if self.error:
            return f"error: {self.error}"
        medians = (statistics.median(self.seconds[key]) / n * 1e6 for key in JUDGED)
        return ", ".join(f"{key} {us:.2f} µs/item" for key, us in zip(JUDGED, medians, strict=True))


def run(opts: argparse.Namespace) -> str:
    quick = opts.quick
    sizes_text = opts.core_sizes or ("1000,10000" if quick else "100000,1000000")
    sizes = [int(s) for s in sizes_text.split(",")]
    repeats = opts.core_repeats or (1 if quick else 3)
    concurrency = opts.core_concurrency

    cells: dict[tuple[str, str, int], Cell] = {}
    plan: list[tuple[Case, str, int]] = []
    for case in CASES:
        for backend in case.backends:
            for size_index, n in enumerate(sizes):
                cell = cells[case.key, backend, n] = Cell()
                if not case.available():
                    cell.skipped = "absent"
                elif size_index > 0 and case.fn is None:
                    continue  # the baseline does not depend on N
                elif (
                    size_index > 0
                    and not opts.core_all_sizes
                    and case.large_backends is not None
                    and backend not in case.large_backends
                ):
                    cell.skipped = "slow"
                else:
                    plan.append((case, backend, n))

    # Repeats of the first size go round-robin, so slow drift hits every case alike;
    # the larger sizes run once. The suspending call's target is judged apart (below).
    first = [p for p in plan if p[2] == sizes[0]]
    larger = [p for p in plan if p[2] != sizes[0]]
    schedule = [p for _ in range(repeats) for p in first] + larger
    for step, (case, backend, n) in enumerate(schedule, 1):
        cell = cells[case.key, backend, n]
        if cell.error:
            continue
        spec = {"case": case.key, "backend": backend, "n": n, "concurrency": concurrency}
        try:
            result = _harness.run_child(THIS, spec, timeout=opts.core_timeout)
        except _harness.ChildError as exc:
            cell.error = str(exc)
        else:
            if not result["ok"]:
                cell.error = "wrong results"
            cell.seconds.append(result["seconds"])
            cell.rss.append(result["peak_rss"])
        _harness.progress(f"  [{step}/{len(schedule)}] {case.key} {backend} n={n}: {_say(cell, n)}")

    # The rows the suspending call's target compares, timed paired, one
    # interpreter per backend and size (`paired_child`).
    paired: dict[tuple[str, int], Paired] = {}
    for size_index, n in enumerate(sizes):
        rounds = opts.core_paired_rounds or (
            1 if quick else PAIRED_ROUNDS[min(size_index, len(PAIRED_ROUNDS) - 1)]
        )
        for backend in CASES_BY_KEY[JUDGED[0]].backends:
            got = paired[backend, n] = Paired(rounds)
            spec = {
                "paired": list(JUDGED),
                "backend": backend,
                "n": n,
                "concurrency": concurrency,
                "rounds": rounds,
            }
            try:
                result = _harness.run_child(THIS, spec, timeout=opts.core_timeout * rounds)
            except _harness.ChildError as exc:
                got.error = str(exc)
            else:
                got.seconds = result["seconds"]
                if not result["ok"]:
                    got.error = "wrong results"
            _harness.progress(f"  paired {backend} n={n}: {_rounds(rounds)}, {got.say(n)}")

    return _render(cells, paired, sizes, repeats, concurrency, quick)


def _say(cell: Cell, n: int) -> str:
    if cell.error:
        return f"error: {cell.error}"
    if not cell.seconds[-1]:
        return f"peak RSS {mb(cell.rss[-1])} MB"
    return f"{cell.seconds[-1] / n * 1e6:.2f} µs/item, peak RSS {mb(cell.rss[-1])} MB"


def _us(cell: Cell, n: int) -> float:
    """The median µs/item of the cell's runs (targets are judged on it, never on the best)."""
    return statistics.median(cell.seconds) / n * 1e6


def _spread(cell: Cell, n: int) -> str:
    """Median, with min and max when there was more than one run."""
    if len(cell.seconds) < 2:
        return f"{_us(cell, n):.2f}"
    low, high = min(cell.seconds) / n * 1e6, max(cell.seconds) / n * 1e6
    return f"{_us(cell, n):.2f} ({low:.2f} to {high:.2f})"


def _render(
    cells: dict[tuple[str, str, int], Cell],
    paired: dict[tuple[str, int], Paired],
    sizes: list[int],
    repeats: int,
    concurrency: int,
    quick: bool,
) -> str:
    errors: list[str] = []
    numbered: dict[int, int] = {}
    used: set[str] = set()
    baseline = {b: min(cells["baseline", b, sizes[0]].rss, default=0) for b in _harness.BACKENDS}

    def text(case: Case, backend: str, n: int, what: str) -> str:
        cell = cells[case.key, backend, n]
        if cell.skipped == "absent":
            used.add("absent")
            return "absent²"
        if cell.skipped == "slow":
            used.add("slow")
            first = cells[case.key, backend, sizes[0]]
            if what == "us" and first.measured:
                return f"skipped¹ (~{_us(first, sizes[0]) * n / 1e6:.0f} s)"
            return "skipped¹"
        if cell.error:
            if id(cell) not in numbered:
                errors.append(f"{case.key} on {backend} at {count(n)}: {cell.error}")
                numbered[id(cell)] = len(errors)
            return f"error³ ({numbered[id(cell)]})"
        if not cell.measured:
            return "-"
        if what == "us":
            return _spread(cell, n)
        if what == "rss":
            return mb(max(cell.rss))
        return mb(max(cell.rss) - baseline[backend])

    headers = ["approach", "backend"]
    headers += [f"µs/item ({count(n)})" for n in sizes]
    headers += [f"peak RSS MB ({count(n)})" for n in sizes]
    headers += [f"over baseline MB ({count(n)})" for n in sizes]
    rows = []
    for case in CASES:
        for backend in case.backends:
            row = [case.label, backend]
            if case.fn is None:
                rss = mb(baseline[backend])
                rows.append(row + ["-"] * len(sizes) + [rss] * len(sizes) + ["0"] * len(sizes))
                continue
            row += [text(case, backend, n, what) for what in ("us", "rss", "over") for n in sizes]
            rows.append(row)

    footnotes = []
    if "slow" in used:
        footnotes.append(
            "¹ Not run at this size, to keep the whole section near ten minutes; the time in "
            "brackets scales the first size's µs/item. The one-task-per-item peers also need "
            "several GB there. `--core-all-sizes` runs them."
        )
    if "absent" in used:
        footnotes.append("² Not in the installed anyio (anyio.amap first appeared in 4.16).")
    footnotes += [f"³ ({i}) {e}" for i, e in enumerate(errors, 1)]

    sizes_said = " and ".join(f"{n:,}" for n in sizes)
    # Rounds depend on the size alone: any backend's tell.
    backend = CASES_BY_KEY[JUDGED[0]].backends[0]
    rounds_said = " and ".join(f"{paired[backend, n].rounds} at {count(n)}" for n in sizes)
    method = (
        f"Each approach maps `async def noop(x): return x` over {sizes_said} items at "
        f"concurrency {concurrency}; the call never suspends, so what is measured is the "
        f"scheduling cost alone (anyio.amap has no limit and starts every item at once). "
        f"Every measurement runs in its own fresh interpreter that imports the same modules "
        f"({', '.join(COMMON_MODULES)}, those installed), so its peak RSS (`ru_maxrss`) is its "
        f"own; the baseline row is such an interpreter that only starts the event loop and "
        f"one anyio task, and _over baseline_ is peak RSS minus that backend's baseline. "
        f"Wall time is taken with `perf_counter` around the fan-out call alone, after imports, "
        f"loop start and an untimed warm-up run of {2 * concurrency} items; it includes "
        f"building the inputs each API needs (coroutines, partials) and, for the ordered "
        f"approaches, the result list. At {count(sizes[0])} items µs/item is the median of "
        f"{repeats} runs, with their min to max in brackets (one process per run, interleaved "
        f"across approaches; RSS is the largest of those runs); each larger size is run once. "
        f"The _suspending call_ rows map `async def work(i): await anyio.sleep(0); return i` "
        f"instead, against the hand-written floor: {concurrency} plain tasks sharing one "
        f"iterator and storing `out[i] = await work(i)`. Their {MAX_TIMES_SUSPEND_FLOOR:g}x "
        f"target is judged apart, at every size, on runs timed paired: one interpreter per "
        f"backend and size runs the floor, anyfan.map and anyfan.stream once per round "
        f"({rounds_said} rounds; the floor between the other two, so next to each, and "
        f"their order alternating), and the target takes the median "
        f"of the rounds' ratios, each run over the same round's floor run, with their min "
        f"to max in brackets. Runs in separate processes minutes apart, as in the table, "
        f"meet different loads on a shared machine (the floor's own runs have spread by "
        f"over 30% in one sitting); runs a second apart mostly meet the same. "
        f"The unordered approaches (anyfan.stream, aiometer.amap, the hand-written "
        f"streams) count results as they arrive instead of keeping them. Two streams "
        f"written by hand are shown, not judged: "
        f"the lean one is the practical floor of any stream (the same tasks append "
        f"`(i, result)` to a deque that one consumer drains in a plain loop, waiting on an "
        f"anyio Event only when it is empty: no record, clock, stats, bound or coroutine per "
        f"result); the memory-stream one sends `(i, result)` through "
        f"`anyio.create_memory_object_stream` with room for {4 * concurrency}, as many as "
        f"anyfan.stream's buffer holds at most (a full buffer plus the batch being read). "
        f"The garbage collector is left on, as users have it. Results are checked after timing. "
        f"The `except*` row fails every (N / {EXCEPT_STAR_FAILURES:,})-th item "
        f"({EXCEPT_STAR_FAILURES:,} failures, half ValueError, half KeyError) with "
        f'`errors="collect"` and splits the `FanError` with two `except*` clauses.'
    )
    parts = [
        f"## {TITLE}",
        method,
        _harness.table(headers, rows, "ll" + "r" * (len(headers) - 2)),
    ]
    if footnotes:
        # Two trailing spaces: a markdown line break between footnotes.
        parts.append("  \n".join(footnotes))
    parts.append(_harness.targets_table(_targets(cells, paired, sizes, baseline), quick=quick))
    return "\n\n".join(parts)


def _targets(
    cells: dict[tuple[str, str, int], Cell],
    paired: dict[tuple[str, int], Paired],
    sizes: list[int],
    baseline: dict[str, int],
) -> list[Target]:
    """One row per anyfan approach, backend and target; an anyfan run that errored fails."""
    speed: list[Target] = []
    ratio: list[Target] = []
    memory: list[Target] = []
    for case in CASES:
        if not case.anyfan:
            continue
        for backend in case.backends:
            name = f"{_plain(case)} on {backend}"
            mine = {n: cells[case.key, backend, n] for n in sizes}
            broken = [f"error ({count(n)})" for n, cell in mine.items() if cell.error]

            got = [(n, _us(cell, n)) for n, cell in mine.items() if cell.measured]
            said = [f"{us:.2f} ({count(n)})" for n, us in got]
            largest = mine[sizes[-1]]
            broken_largest = ["error"] if largest.error else []
            over = max(largest.rss) - baseline[backend] if largest.measured else None
            memory.append(
                _check(
                    f"{name}: peak RSS at {count(sizes[-1])} items ≤ "
                    f"{mb(MAX_RSS_OVER_BASELINE)} MB over baseline",
                    ([] if over is None else [f"{mb(over)} MB"]) + broken_largest,
                    [] if over is None else [over <= MAX_RSS_OVER_BASELINE],
                    broken_largest,
                )
            )
            if case.key != "anyfan_map":
                # The speed targets are the engine's scheduling cost, which is map's;
                # stream adds a hand-off to a consumer task and is reported, not judged.
                continue
            speed.append(
                _check(
                    f"{name}: ≤ {MAX_US_PER_ITEM:g} µs/item",
                    said + broken,
                    [us <= MAX_US_PER_ITEM for _, us in got],
                    broken,
                )
            )

            peer_backend = "asyncio" if backend == "uvloop" else backend
            ratios = []
            for n, cell in mine.items():
                peers = [
                    _us(cells[key, peer_backend, n], n)
                    for key in ("aiometer_amap", "aiometer_run_all")
                    if cells[key, peer_backend, n].measured
                ]
                if peers and cell.measured:
                    ratios.append((n, min(peers) / _us(cell, n)))
            ratio.append(
                _check(
                    f"{name}: ≥ {MIN_TIMES_BELOW_AIOMETER:g}x below the faster aiometer call "
                    f"on {peer_backend}",
                    [f"{r:.1f}x ({count(n)})" for n, r in ratios] + broken,
                    [r >= MIN_TIMES_BELOW_AIOMETER for _, r in ratios],
                    broken,
                )
            )
    suspend: list[Target] = []
    for key in ("suspend_map", "suspend_stream"):
        case = CASES_BY_KEY[key]
        for backend in case.backends:
            ratios, broken, said = [], [], []
            for n in sizes:
                pair = paired[backend, n]
                if pair.error:
                    broken.append(f"error ({count(n)})")
                    continue
                summary = _harness.summarise(pair.ratios(key))
                ratios.append((n, summary.median))
                said.append(f"{summary.show('.2f')}x ({count(n)}, {_rounds(pair.rounds)})")
            first = cells[key, backend, sizes[0]]
            lean = cells.get(("suspend_lean", backend, sizes[0]))
            handoff = cells.get(("suspend_handoff", backend, sizes[0]))
            if key == "suspend_stream" and first.measured:
                # Context, not the verdict: what the same stream costs written by hand.
                if lean and lean.measured:
                    said.append(
                        f"{_us(first, sizes[0]) / _us(lean, sizes[0]):.2f}x the lean stream "
                        f"written by hand ({count(sizes[0])})"
                    )
                if handoff and handoff.measured:
                    hand = _us(handoff, sizes[0]) / _us(first, sizes[0])
                    said.append(
                        f"written by hand on an anyio memory stream it takes {hand:.1f}x "
                        f"as long ({count(sizes[0])})"
                    )
            suspend.append(
                _check(
                    f"{_plain(case)} on {backend}: ≤ {MAX_TIMES_SUSPEND_FLOOR:g}x the floor",
                    said + broken,
                    [r <= MAX_TIMES_SUSPEND_FLOOR for _, r in ratios],
                    broken,
                )
            )
    return speed + ratio + suspend + memory


def _check(requirement: str, said: list[str], oks: list[bool], broken: list[str]) -> Target:
    ok = None if not oks and not broken else all(oks) and not broken
    return Target(requirement, ", ".join(said) or "-", ok)


def _rounds(rounds: int) -> str:
    return f"{rounds} round" + ("" if rounds == 1 else "s")


def _plain(case: Case) -> str:
    return case.label.replace("**", "")


if __name__ == "__main__" and "--child" in sys.argv:
    _harness.child_main(child)
