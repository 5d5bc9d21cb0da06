"""Section ``limits`` (issue 3/5): how precisely rate limiters hold a limit, and what they cost.

Precision: 200 workers loop on ``acquire`` against a 50/s limit for 10 s (real
time), recording every admission. Contention: workers loop on ``acquire``
against a 2,000/s limit while 10 or 10,000 of them wait, and the CPU time per
admission is compared. Every case runs in a fresh interpreter (this file, run
with ``--child``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness
from _harness import Target, count

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable

TITLE = "Rate limits: precision and contention"
ORDER = 30

THIS = Path(__file__).resolve()

LIMIT = 50
WORKERS = 200
MIN_SHARE_OF_LIMIT = 0.99
CONTENTION_RATE = 2_000
CONTENTION_WAITERS = (10, 10_000)
MAX_CONTENTION_RATIO = 2.0
FAST_BACKENDS = ("asyncio", "uvloop", "trio")


# -- inside a child ----------------------------------------------------------


async def _anyfan_loop(record: Callable[[], None], workers: int, rate: float) -> None:
    import anyio

    from anyfan._core._rate import Limits, Rate

    limits = Limits([Rate(rate, 1)])
    limits.bind()

    async def worker() -> None:
        while True:
            await limits.acquire(None)
            record()

    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker)


async def _aiolimiter_loop(record: Callable[[], None], workers: int, rate: float) -> None:
    import anyio
    from aiolimiter import AsyncLimiter

    limiter = AsyncLimiter(rate, 1)

    async def worker() -> None:
        while True:
            await limiter.acquire()
            record()

    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker)


async def _aiometer_loop(record: Callable[[], None], workers: int, rate: float) -> None:
    import itertools

    import aiometer

    async def call(_: int) -> None:
        record()

    # Items are endless; the run is cut off from outside.
    await aiometer.run_on_each(call, itertools.count(), max_at_once=workers, max_per_second=rate)


LOOPS: dict[str, Callable[[Callable[[], None], int, float], Awaitable[None]]] = {
    "anyfan": _anyfan_loop,
    "aiolimiter": _aiolimiter_loop,
    "aiometer": _aiometer_loop,
}


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one limiter; after ``warmup`` s, count admissions and CPU for ``seconds`` s."""
    if spec["limiter"] == "fast-path":
        return _fast_path(spec)
    import anyio

    # Import everything the loop needs now, so no import lands in the measured time.
    for module in ("anyfan._core._rate", spec["limiter"]):
        __import__(module)
    seconds = spec["seconds"]
    warmup = spec.get("warmup", 0.0)
    times: list[float] = []
    origin = 0.0

    def record() -> None:
        times.append(time.perf_counter() - origin)

    async def main() -> float:
        nonlocal origin
        async with anyio.create_task_group() as tg:
            origin = time.perf_counter()
            tg.start_soon(LOOPS[spec["limiter"]], record, spec["workers"], spec["rate"])
            if warmup:
                await anyio.sleep(warmup)  # let every worker queue up first
            times.clear()
            origin = time.perf_counter()
            cpu = time.process_time()
            await anyio.sleep(seconds)
            cpu = time.process_time() - cpu
            tg.cancel_scope.cancel()
        return cpu

    cpu = _harness.run_on(spec["backend"], main)
    admitted = [t for t in times if 0 <= t < seconds]
    return {
        "times": admitted if spec.get("keep_times") else [],
        "n": len(admitted),
        "cpu": cpu,
    }


def _fast_path(spec: dict[str, Any]) -> dict[str, Any]:
    """CPU per acquire when the limit never makes anyone wait."""
    from anyfan._core._rate import Limits, Rate

    n = spec["n"]

    async def main() -> float:
        limits = Limits([Rate(1e12, 1)])
        limits.bind()
        acquire = limits.acquire
        cpu = time.process_time()
        for _ in range(n):
            await acquire(None)
        return time.process_time() - cpu

    return {"n": n, "cpu": _harness.run_on(spec["backend"], main)}


# -- analysis -----------------------------------------------------------------


def most_in_any_window(times: list[float], width: float) -> int:
    """The most admissions within any half-open window ``[t, t + width)``."""
    best = 0
    first = 0
    for last, t in enumerate(times):
        while times[first] + width <= t:
            first += 1
        best = max(best, last - first + 1)
    return best


def achieved_rate(times: list[float]) -> float:
    """Admissions per second from the first to the last (startup delay left out)."""
    if len(times) < 2 or times[-1] == times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


@dataclass(frozen=True)
class Case:
    limiter: str
    label: str
    backends: tuple[str, ...]

    def available(self) -> bool:
        import importlib.util

        return self.limiter == "anyfan" or importlib.util.find_spec(self.limiter) is not None


PRECISION_CASES = (
    Case("anyfan", "anyfan `Rate(50, 1)`", ("asyncio", "uvloop", "trio")),
    Case("aiolimiter", "aiolimiter `AsyncLimiter(50, 1)`", ("asyncio", "uvloop")),
    Case("aiometer", "aiometer `max_per_second=50`", ("asyncio", "trio")),
)
CONTENTION_CASES = (
    Case("anyfan", "anyfan `Rate`", ("asyncio", "trio")),
    Case("aiolimiter", "aiolimiter `AsyncLimiter`", ("asyncio",)),
)


# -- the section, built in the parent -------------------------------------------


def add_arguments(parser: argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--limits-seconds",
        type=float,
        metavar="S",
        help="length of each precision run (default 10; with --quick 2)",
    )
    parser.add_argument(
        "--limits-contention-seconds",
        type=float,
        metavar="S",
        help="length of each contention run (default 5; with --quick 1)",
    )


def run(opts: argparse.Namespace) -> str:
    quick = opts.quick
    seconds = getattr(opts, "limits_seconds", None) or (2.0 if quick else 10.0)
    busy = getattr(opts, "limits_contention_seconds", None) or (1.0 if quick else 5.0)
    timeout = 60 + 3 * max(seconds, busy)

    precision: dict[tuple[str, str], dict[str, Any] | str] = {}
    for case in PRECISION_CASES:
        for backend in case.backends:
            spec = {
                "limiter": case.limiter,
                "backend": backend,
                "seconds": seconds,
                "workers": WORKERS,
                "rate": LIMIT,
                "keep_times": True,
            }
            precision[case.limiter, backend] = _measure(case, spec, timeout)
            _harness.progress(
                f"  limits precision {case.limiter} {backend}: "
                f"{_brief(precision[case.limiter, backend])}"
            )

    contention: dict[tuple[str, str, int], dict[str, Any] | str] = {}
    for case in CONTENTION_CASES:
        for backend in case.backends:
            for waiters in CONTENTION_WAITERS:
                spec = {
                    "limiter": case.limiter,
                    "backend": backend,
                    "seconds": busy,
                    "workers": waiters,
                    "rate": CONTENTION_RATE,
                    "warmup": 1.0 if quick else 2.0,
                }
                result = _measure(case, spec, timeout)
                contention[case.limiter, backend, waiters] = result
                _harness.progress(
                    f"  limits contention {case.limiter} {backend} {waiters}: {_brief(result)}"
                )
    fast: dict[str, dict[str, Any] | str] = {}
    fast_case = Case("anyfan", "anyfan", FAST_BACKENDS)
    for backend in FAST_BACKENDS:
        spec = {"limiter": "fast-path", "backend": backend, "n": 20_000 if quick else 200_000}
        fast[backend] = _measure(fast_case, spec, timeout)
        _harness.progress(f"  limits fast path {backend}: {_brief(fast[backend])}")
    return _render(precision, contention, fast, seconds, busy, quick)


def _measure(case: Case, spec: dict[str, Any], timeout: float) -> dict[str, Any] | str:
    if not case.available():
        return "absent"
    try:
        return _harness.run_child(THIS, spec, timeout=timeout)
    except _harness.ChildError as exc:
        return f"error: {exc}"


def _brief(result: dict[str, Any] | str) -> str:
    if isinstance(result, str):
        return result
    return f"{result['n']} admitted, {_us_per(result):.1f} µs CPU each"


def _us_per(result: dict[str, Any]) -> float:
    return result["cpu"] / max(result["n"], 1) * 1e6


def _render(
    precision: dict[tuple[str, str], dict[str, Any] | str],
    contention: dict[tuple[str, str, int], dict[str, Any] | str],
    fast: dict[str, dict[str, Any] | str],
    seconds: float,
    busy: float,
    quick: bool,
) -> str:
    rows = []
    for case in PRECISION_CASES:
        for backend in case.backends:
            result = precision[case.limiter, backend]
            if isinstance(result, str):
                rows.append([case.label, backend, result, "", "", "", ""])
                continue
            times = result["times"]
            first_second = sum(1 for t in times if t < 1.0)
            rate = achieved_rate(times)
            rows.append(
                [
                    case.label,
                    backend,
                    str(most_in_any_window(times, 1.0)),
                    str(first_second),
                    f"{rate:.2f}",
                    f"{rate / LIMIT:.1%}",
                    f"{_us_per(result):.1f}",
                ]
            )
    precision_table = _harness.table(
        (
            "limiter",
            "backend",
            "most in any 1 s",
            "in the first 1 s",
            "average / s",
            "of the limit",
            "CPU µs per acquire",
        ),
        rows,
    )

    crows = []
    for case in CONTENTION_CASES:
        for backend in case.backends:
            row = [case.label, backend]
            for waiters in CONTENTION_WAITERS:
                result = contention[case.limiter, backend, waiters]
                if isinstance(result, str):
                    row += [result, ""]
                else:
                    row += [f"{_us_per(result):.1f}", f"{result['n'] / busy:,.0f}"]
            crows.append(row)
    headers = ["limiter", "backend"]
    for waiters in CONTENTION_WAITERS:
        headers += [f"CPU µs/acquire, {count(waiters)} waiting", f"admitted/s ({count(waiters)})"]
    contention_table = _harness.table(headers, crows)
    fast_table = _harness.table(
        ("backend", "CPU µs per acquire (never waits)"),
        [[b, r if isinstance(r, str) else f"{_us_per(r):.2f}"] for b, r in fast.items()],
    )

    targets = []
    anyfan_runs = [(b, precision["anyfan", b]) for b in PRECISION_CASES[0].backends]
    measured = [(b, r) for b, r in anyfan_runs if not isinstance(r, str)]
    if measured:
        worst_window = max(most_in_any_window(r["times"], 1.0) for _, r in measured)
        worst_share = min(achieved_rate(r["times"]) / LIMIT for _, r in measured)
        targets.append(
            Target(
                f"anyfan: at most {LIMIT} admitted in any 1-s window (every backend)",
                f"at most {worst_window}",
                worst_window <= LIMIT,
            )
        )
        targets.append(
            Target(
                f"anyfan: average rate at least {MIN_SHARE_OF_LIMIT:.0%} of the limit",
                f"at least {worst_share:.1%}",
                worst_share >= MIN_SHARE_OF_LIMIT,
            )
        )
    else:
        targets.append(Target("anyfan precision", "not measured", None))
    ratios = []
    for backend in CONTENTION_CASES[0].backends:
        few = contention["anyfan", backend, CONTENTION_WAITERS[0]]
        many = contention["anyfan", backend, CONTENTION_WAITERS[-1]]
        if not isinstance(few, str) and not isinstance(many, str):
            ratios.append((backend, _us_per(many) / _us_per(few)))
    if ratios:
        worst = max(ratio for _, ratio in ratios)
        targets.append(
            Target(
                f"anyfan: an acquire with {count(CONTENTION_WAITERS[-1])} waiters costs at most "
                f"{MAX_CONTENTION_RATIO:g}x one with {CONTENTION_WAITERS[0]}",
                ", ".join(f"{b} {r:.2f}x" for b, r in ratios),
                worst <= MAX_CONTENTION_RATIO,
            )
        )

    method = (
        f"**Precision.** {WORKERS} tasks each loop on `acquire()` against a limit of {LIMIT} "
        f"per second for {seconds:g} s of real time, so demand far exceeds the limit; every "
        "admission time is recorded (`time.perf_counter`). *Most in any 1 s* is the most "
        "admissions inside any window `[t, t + 1 s)`, the quantity a provider that enforces "
        "its limit in 1-second slices sees; *average / s* is the rate from the first admission "
        "to the last (admissions after the first, over the time between them). "
        "aiometer runs `run_on_each` over endless items with `max_at_once="
        f"{WORKERS}, max_per_second={LIMIT}`. *CPU µs per acquire* is the process's CPU time "
        "over the run divided by admissions, waiting included. "
        f"**Contention.** The same loop against {CONTENTION_RATE:,}/s for {busy:g} s, with "
        f"{CONTENTION_WAITERS[0]} and with {CONTENTION_WAITERS[-1]:,} tasks queued at all "
        "times (counted after the tasks have had time to queue): a limiter whose cost grows "
        "with its queue shows it here. **Fast path.** `acquire` in a loop under a limit that "
        "never binds. One fresh interpreter per case."
    )
    return "\n\n".join(
        [
            f"## {TITLE}",
            method,
            "**Precision** (limit 50/s)",
            precision_table,
            f"**Contention** (limit {CONTENTION_RATE:,}/s)",
            contention_table,
            "**Fast path**",
            fast_table,
            _harness.targets_table(targets, quick=quick),
        ]
    )


if __name__ == "__main__" and "--child" in sys.argv:
    _harness.child_main(child)
