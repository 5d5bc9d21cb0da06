"""Section ``blocking`` (issue 2/5): what calling anyfan from sync code costs.

Two measurements, in one process: the overhead of one blocking call with one
item, next to the usual ways of calling async code from sync code; and the
per-item overhead of one blocking map over many no-op items, next to the same
map awaited directly. Every case is timed ``repeats`` times, interleaved; the
median is shown with the fastest and slowest run, and targets are judged on it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))
import anyio
import anyio.from_thread

import _harness
import anyfan
from _harness import Target, count
from anyfan import blocking

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

TITLE = "Blocking facade: calling from sync code"
ORDER = 20

MAX_RATIO_TO_DIRECT = 1.5
CONCURRENCY = 100


async def noop(x: int) -> int:
    return x


def median_of(repeats: int, cases: dict[str, Callable[[], float]]) -> dict[str, _harness.Summary]:
    """Time every case ``repeats`` times, interleaved; summarise each one's runs (seconds)."""
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, case in cases.items():
            runs[name].append(case())
    return {name: _harness.summarise(seconds) for name, seconds in runs.items()}


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- one call, one item ----------------------------------------------------------


def per_call_cases(calls: int) -> dict[str, Callable[[], float]]:
    """Each case makes ``calls`` calls of ``anyfan.map(noop, [1])`` and returns the time."""
    loop = blocking.default_loop()
    loop.call(noop, 0)  # the thread is started outside the timing

    def awaited() -> float:
        async def main() -> float:
            start = time.perf_counter()
            for _ in range(calls):
                await anyfan.map(noop, [1])
            return time.perf_counter() - start

        return anyio.run(main)

    def facade() -> float:
        return timed(lambda: [blocking.map(noop, [1]) for _ in range(calls)])

    def facade_hop() -> float:
        return timed(lambda: [loop.call(noop, 1) for _ in range(calls)])

    def asyncio_run() -> float:
        return timed(lambda: [asyncio.run(anyfan.map(noop, [1])) for _ in range(calls)])

    def portal() -> float:
        with anyio.from_thread.start_blocking_portal() as p:
            p.call(noop, 0)
            return timed(lambda: [p.call(anyfan.map, noop, [1]) for _ in range(calls)])

    def portal_hop() -> float:
        with anyio.from_thread.start_blocking_portal() as p:
            p.call(noop, 0)
            return timed(lambda: [p.call(noop, 1) for _ in range(calls)])

    cases = {
        "`await anyfan.map(noop, [1])` in a running loop (no thread hop)": awaited,
        "`anyfan.blocking.map(noop, [1])`": facade,
        "`asyncio.run(anyfan.map(noop, [1]))`": asyncio_run,
        "anyio `portal.call(anyfan.map, noop, [1])`": portal,
    }
    try:
        from asgiref.sync import async_to_sync

        to_sync = async_to_sync(anyfan.map)
        cases["asgiref `async_to_sync(anyfan.map)(noop, [1])`"] = lambda: timed(
            lambda: [to_sync(noop, [1]) for _ in range(calls)]
        )
    except ImportError:  # pragma: no cover - optional
        pass
    cases["the hop alone: `blocking.Loop.call(noop, 1)`"] = facade_hop
    cases["the hop alone: anyio `portal.call(noop, 1)`"] = portal_hop
    return cases


# -- many items --------------------------------------------------------------------


@dataclass(frozen=True)
class ItemCase:
    """One way to run ``n`` no-op items, and the backend it runs on."""

    label: str
    backend: str
    run: Callable[[], float]
    n: int


def per_item_cases(items: int, one_by_one: int) -> list[ItemCase]:
    cases = []
    for backend in ("asyncio", "trio"):
        try:
            blocking.default_loop(backend)  # type: ignore[arg-type]
        except ImportError:  # pragma: no cover - trio not installed
            continue
        cases.extend(_map_cases(backend, items))
    cases.extend(_one_by_one_cases(one_by_one))
    return cases


def _map_cases(backend: str, n: int) -> list[ItemCase]:
    def direct() -> float:
        async def main() -> float:
            start = time.perf_counter()
            await anyfan.map(noop, range(n), concurrency=CONCURRENCY)
            return time.perf_counter() - start

        return anyio.run(main, backend=backend)

    def facade_map() -> float:
        return timed(
            lambda: blocking.map(noop, range(n), concurrency=CONCURRENCY, backend=backend)  # type: ignore[arg-type]
        )

    # Streams and futures cost far more per item (the engine's stream sends every
    # outcome through a memory channel); a tenth of the items says as much.
    tenth = max(1, n // 10)

    def direct_stream() -> float:
        async def main() -> float:
            start = time.perf_counter()
            async with anyfan.stream(noop, range(tenth), concurrency=CONCURRENCY) as outcomes:
                async for _ in outcomes:
                    pass
            return time.perf_counter() - start

        return anyio.run(main, backend=backend)

    def facade_stream() -> float:
        def drain() -> None:
            for _ in blocking.stream(noop, range(tenth), concurrency=CONCURRENCY, backend=backend):  # type: ignore[arg-type]
                pass

        return timed(drain)

    def executor_map() -> float:
        with blocking.Executor(CONCURRENCY, backend=backend) as executor:  # type: ignore[arg-type]
            executor.submit(noop, 0).result()
            return timed(lambda: list(executor.map(noop, range(tenth))))

    blocking.map(noop, [0], backend=backend)  # type: ignore[arg-type]
    return [
        ItemCase("`await anyfan.map(...)` directly", backend, direct, n),
        ItemCase("`anyfan.blocking.map(...)`", backend, facade_map, n),
        ItemCase("`async for o in anyfan.stream(...)` directly", backend, direct_stream, tenth),
        ItemCase("`for o in anyfan.blocking.stream(...)`", backend, facade_stream, tenth),
        ItemCase("`anyfan.Executor(100).map(...)`", backend, executor_map, tenth),
    ]


def _one_by_one_cases(n: int) -> list[ItemCase]:
    def portal() -> float:
        with anyio.from_thread.start_blocking_portal() as p:
            return timed(lambda: [p.call(noop, i) for i in range(n)])

    def asyncio_run() -> float:
        return timed(lambda: [asyncio.run(noop(i)) for i in range(n)])

    cases = [
        ItemCase("anyio `portal.call(noop, x)` per item", "asyncio", portal, n),
        ItemCase("`asyncio.run(noop(x))` per item", "asyncio", asyncio_run, n),
    ]
    try:
        from asgiref.sync import async_to_sync

        to_sync = async_to_sync(noop)
        cases.append(
            ItemCase(
                "asgiref `async_to_sync(noop)(x)` per item",
                "asyncio",
                lambda: timed(lambda: [to_sync(i) for i in range(n)]),
                n,
            )
        )
    except ImportError:  # pragma: no cover - optional
        pass
    return cases


# -- the section -------------------------------------------------------------------


def add_arguments(parser: argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--blocking-items", type=int, default=100_000, help="items in the per-item maps"
    )
    parser.add_argument(
        "--blocking-calls", type=int, default=2_000, help="calls in the per-call measurement"
    )
    parser.add_argument(
        "--blocking-repeats", type=int, default=5, help="times each case is timed (median shown)"
    )


def run(opts: argparse.Namespace) -> str:
    quick = bool(getattr(opts, "quick", False))
    items = 5_000 if quick else getattr(opts, "blocking_items", 100_000)
    calls = 100 if quick else getattr(opts, "blocking_calls", 2_000)
    repeats = 1 if quick else getattr(opts, "blocking_repeats", 5)
    one_by_one = max(1, min(items, calls * 5))

    _harness.progress(f"   one call, one item: {calls} calls x {repeats}")
    per_call = median_of(repeats, per_call_cases(calls))
    _harness.progress(f"   {count(items)} items per map x {repeats}")
    cases = per_item_cases(items, one_by_one)
    timed = median_of(repeats, {f"{c.label}|{c.backend}": c.run for c in cases})
    best = {name: summary.median for name, summary in timed.items()}

    facade_call = per_call["`anyfan.blocking.map(noop, [1])`"].median
    call_rows = [
        (
            label,
            seconds.map(lambda s: s / calls * 1e6).show(",.0f"),
            f"{seconds.median / facade_call:.2f}",
        )
        for label, seconds in per_call.items()
    ]
    item_rows = []
    direct = {
        c.backend: best[f"{c.label}|{c.backend}"] for c in cases if c.label.startswith("`await")
    }
    for case in cases:
        summary = timed[f"{case.label}|{case.backend}"]
        ratio = f"{summary.median / case.n / (direct[case.backend] / items):.2f}"
        per_item = summary.map(lambda s, n=case.n: s / n * 1e6).show(",.2f")
        item_rows.append((case.label, case.backend, count(case.n), per_item, ratio))

    targets = []
    for backend, direct_seconds in direct.items():
        facade_seconds = best[f"`anyfan.blocking.map(...)`|{backend}"]
        ratio = facade_seconds / direct_seconds
        targets.append(
            Target(
                f"blocking map of {count(items)} no-op items <= {MAX_RATIO_TO_DIRECT}x "
                f"the same map awaited directly ({backend})",
                f"{ratio:.2f}x ({facade_seconds:.3f} s vs {direct_seconds:.3f} s)",
                ratio <= MAX_RATIO_TO_DIRECT,
            )
        )

    method = (
        f"All in one process. *One call, one item*: {calls} sequential calls of "
        "`anyfan.map(noop, [1])` made from a plain sync thread, each way there is to do that "
        "(the facade's loop thread and the anyio portal started beforehand); the last two rows "
        "time the thread hop alone, awaiting `noop` with no fan-out. *Many items*: one fan-out "
        f"of `async def noop(x): return x` over {count(items)} items at concurrency "
        f"{CONCURRENCY}, awaited directly under `anyio.run` (timed inside the loop) and through "
        "the facade from the main thread (the stream and `Executor` rows, far costlier per "
        "item, use a tenth of the items); the one-call-per-item rows run "
        f"{count(one_by_one)} items one call at a time. Each case ran {repeats} times, "
        "interleaved with the others: the median is shown, with the fastest and slowest run in "
        "brackets; ratios and targets use the medians."
    )
    return "\n\n".join(
        [
            f"## {TITLE}",
            method,
            "**One call, one item**",
            _harness.table(("approach", "µs per call", "x blocking.map"), call_rows),
            f"**Many items** (concurrency {CONCURRENCY})",
            _harness.table(
                ("approach", "backend", "items", "µs per item", "x direct"), item_rows, "llrrr"
            ),
            _harness.targets_table(targets, quick=quick),
        ]
    )


if __name__ == "__main__":
    import argparse as _argparse

    _parser = _argparse.ArgumentParser(description=TITLE)
    _parser.add_argument("--quick", action="store_true")
    add_arguments(_parser.add_argument_group("blocking"))
    print(run(_parser.parse_args()))
