"""Section ``call`` (issue 3/5): what one `Fan.call` costs over a bare await.

Sequential calls of a no-op in one task, so the cost measured is anyfan's own
per call: taking a slot, the stats, and (with limits) one uncontended
admission by a `Rate` that never binds. The same job done with aiolimiter's
``async with limiter:`` inside an ``asyncio.Semaphore`` runs in the same
process, interleaved. Each case is timed ``repeats`` times; the median is shown, with min and
max, and targets are judged on it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness
import anyfan
from _harness import BACKENDS, Target, count, run_on

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable

TITLE = "Single calls: `Fan.call` over a bare await"
ORDER = 15

#: The target: ``fan.call(noop, x)`` on a Fan with no limits costs at most this much more
#: than ``await noop(x)``, on asyncio.
MAX_OVERHEAD_US = 2.0
CONCURRENCY = 100
#: A rate far above what one task reaches: admission is checked but never waits.
NEVER_BINDS = 1e9


async def noop(x: int) -> int:
    return x


def _loop(body: Callable[[int], Awaitable[Any]], n: int) -> Callable[[], Awaitable[float]]:
    async def main() -> float:
        start = time.perf_counter()
        for i in range(n):
            await body(i)
        return time.perf_counter() - start

    return main


def cases(backend: str, n: int) -> dict[str, Callable[[], Awaitable[float]]]:
    """Each case runs ``n`` sequential calls on ``backend`` and returns the seconds taken."""
    plain = anyfan.Fan(CONCURRENCY)
    limited = anyfan.Fan(CONCURRENCY, limits=[anyfan.Rate(NEVER_BINDS)])
    retrying = anyfan.Fan(CONCURRENCY, limits=[anyfan.Rate(NEVER_BINDS)], retry=anyfan.Retry(3))
    wrapped = plain.wrap(noop)

    async def plain_call(i: int) -> int:
        return await plain.call(noop, i)

    async def limited_call(i: int) -> int:
        return await limited.call(noop, i)

    async def retrying_call(i: int) -> int:
        return await retrying.call(noop, i)

    alone = anyfan.Rate(NEVER_BINDS)

    async def rate_alone(i: int) -> int:
        async with alone:
            return await noop(i)

    async def instrumented() -> float:
        # anyfan.otel installed, no OpenTelemetry SDK configured: it must cost nothing.
        import anyfan.otel

        anyfan.otel.instrument()
        try:
            return await _loop(plain_call, n)()
        finally:
            anyfan.otel.uninstrument()

    out: dict[str, Callable[[], Awaitable[float]]] = {
        "`await noop(x)` (the floor)": _loop(noop, n),
        "`await fan.call(noop, x)`, no limits": _loop(plain_call, n),
        "`await ask(x)`, `ask = fan.wrap(noop)`": _loop(wrapped, n),
        "`await fan.call(noop, x)`, a `Rate` that never binds": _loop(limited_call, n),
        "… and a `Retry` policy": _loop(retrying_call, n),
        "`async with rate:` + `await noop(x)`, a `Rate` on its own": _loop(rate_alone, n),
    }
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:  # pragma: no cover - the otel extra is optional
        pass
    else:
        out["`await fan.call(noop, x)`, no limits, `anyfan.otel.instrument()`, no SDK"] = (
            instrumented
        )
    if backend != "trio":
        try:
            from aiolimiter import AsyncLimiter
        except ImportError:  # pragma: no cover - optional
            return out

        def peer() -> Callable[[int], Awaitable[int]]:
            semaphore: asyncio.Semaphore | None = None
            limiter = AsyncLimiter(NEVER_BINDS, 1)

            async def guarded(i: int) -> int:
                nonlocal semaphore
                if semaphore is None:
                    semaphore = asyncio.Semaphore(CONCURRENCY)  # on the running loop
                async with semaphore, limiter:
                    return await noop(i)

            return guarded

        out["aiolimiter `async with semaphore, limiter:` + `await noop(x)`"] = _loop(peer(), n)
        limiter = AsyncLimiter(NEVER_BINDS, 1)

        async def limiter_alone(i: int) -> int:
            async with limiter:
                return await noop(i)

        out["aiolimiter `async with limiter:` + `await noop(x)`"] = _loop(limiter_alone, n)
    return out


def add_arguments(parser: argparse._ArgumentGroup) -> None:
    parser.add_argument("--call-n", type=int, default=200_000, help="sequential calls per case")
    parser.add_argument(
        "--call-repeats", type=int, default=5, help="times each case is timed (median shown)"
    )


def measure(backend: str, n: int, repeats: int) -> dict[str, _harness.Summary]:
    """Seconds per case on ``backend`` (median, min, max), cases interleaved ``repeats`` times."""
    runs: dict[str, list[float]] = {}
    for _ in range(repeats):
        for label, main in cases(backend, n).items():
            runs.setdefault(label, []).append(run_on(backend, main))
    return {label: _harness.summarise(seconds) for label, seconds in runs.items()}


def run(opts: argparse.Namespace) -> str:
    quick = bool(getattr(opts, "quick", False))
    n = 5_000 if quick else getattr(opts, "call_n", 200_000)
    repeats = 1 if quick else getattr(opts, "call_repeats", 5)
    rows = []
    overhead: dict[str, float] = {}
    for backend in BACKENDS:
        try:
            _harness.progress(f"   {backend}: {count(n)} calls x {repeats}")
            timed = measure(backend, n, repeats)
        except ImportError:  # pragma: no cover - uvloop or trio not installed
            continue
        floor = timed["`await noop(x)` (the floor)"].median / n * 1e6
        for label, seconds in timed.items():
            us = seconds.map(lambda s: s / n * 1e6)
            rows.append((label, backend, us.show(",.2f"), f"{us.median - floor:+,.2f}"))
        overhead[backend] = timed["`await fan.call(noop, x)`, no limits"].median / n * 1e6 - floor
    asyncio_overhead = overhead.get("asyncio")
    targets = [
        Target(
            f"`fan.call` costs at most {MAX_OVERHEAD_US:g} µs more than a bare await (asyncio)",
            "not measured" if asyncio_overhead is None else f"+{asyncio_overhead:.2f} µs",
            None if asyncio_overhead is None else asyncio_overhead <= MAX_OVERHEAD_US,
        )
    ]
    method = (
        f"One task awaits a no-op {count(n)} times in a row, each way; the loop is timed "
        "inside the event loop. The Fans have concurrency "
        f"{CONCURRENCY}; the `Rate` allows {NEVER_BINDS:g} calls a second, so it admits every "
        "call at once and what is measured is its bookkeeping. The aiolimiter row does the "
        "same job by hand (a semaphore for the concurrency, the limiter for the rate), "
        "asyncio only; the `Rate` on its own is compared with aiolimiter on its own. "
        f"Each case ran {repeats} times, interleaved: the median is shown, with the fastest "
        "and slowest run in brackets; the overhead and the target use the medians."
    )
    return "\n\n".join(
        [
            f"## {TITLE}",
            method,
            _harness.table(("approach", "backend", "µs per call", "over the floor"), rows, "llrr"),
            _harness.targets_table(targets, quick=quick),
        ]
    )


if __name__ == "__main__":  # a quick look without run.py
    import argparse as _argparse

    print(run(_argparse.Namespace(quick="--quick" in sys.argv, call_n=50_000, call_repeats=3)))
