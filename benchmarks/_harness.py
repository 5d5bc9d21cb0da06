"""Shared helpers for the benchmark sections: child processes, event loops, markdown.

Every measurement that reports memory runs in a fresh interpreter, so that peak
RSS belongs to that one case. A section module doubles as its own child script:
``run.py`` imports it to build the section, and the section re-runs its own file
with ``--child SPEC_JSON`` for each case (see `child_main` and `run_child`).

Sections report their targets through `verdict`, so that ``run.py`` can count
PASS and FAIL across sections without knowing what each one measures.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
    from pathlib import Path

T = TypeVar("T")

BACKENDS = ("asyncio", "uvloop", "trio")

PASS = "**PASS**"
FAIL = "**FAIL**"

#: Marks the last stdout line of a child, so stray prints cannot be mistaken for it.
_RESULT_PREFIX = "BENCH-RESULT "


# -- inside a child ----------------------------------------------------------


def peak_rss_bytes() -> int:
    """The peak resident set size of this process so far."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak if sys.platform == "darwin" else peak * 1024


def run_on(backend: str, main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main()`` on a fresh event loop of ``backend`` (asyncio, uvloop or trio)."""
    if backend == "asyncio":
        return asyncio.run(_as_coroutine(main))
    if backend == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_as_coroutine(main))
    if backend == "trio":
        import trio

        return trio.run(main)
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")


async def _as_coroutine(main: Callable[[], Awaitable[T]]) -> T:
    return await main()


def child_main(handler: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Serve one ``--child SPEC_JSON`` request: run ``handler(spec)`` and print its result.

    The result gains ``peak_rss`` (bytes) measured after the handler returned.
    """
    spec = json.loads(sys.argv[sys.argv.index("--child") + 1])
    result = handler(spec)
    result["peak_rss"] = peak_rss_bytes()
    sys.stdout.write(_RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


# -- in the parent -----------------------------------------------------------


class ChildError(RuntimeError):
    """A child process failed, timed out or printed no result."""


def run_child(script: Path | str, spec: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """Run ``script --child SPEC`` in a fresh interpreter and return the result it printed."""
    command = [sys.executable, str(script), "--child", json.dumps(spec)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ChildError(f"timed out after {timeout:.0f} s") from exc
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(_RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(_RESULT_PREFIX) :])
            return result
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    raise ChildError(f"exit {done.returncode}: {tail}")


def progress(message: str) -> None:
    """Report progress on stderr, so stdout stays clean for the caller."""
    print(message, file=sys.stderr, flush=True)


class Stopwatch:
    """Wall time since construction, for a section's own footer."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    @property
    def seconds(self) -> float:
        """Seconds since the stopwatch was made."""
        return time.perf_counter() - self._start


# -- repeats: median with min and max ---------------------------------------------


@dataclass(frozen=True)
class Summary:
    """Repeated measurements of one figure: judge on ``median``, show ``low`` and ``high``.

    Attributes:
        median: The median of the runs (the figure targets are judged on).
        low: The smallest run.
        high: The largest run.
        runs: Every run, in the order measured.
    """

    median: float
    low: float
    high: float
    runs: tuple[float, ...]

    def show(self, spec: str = ",.0f", unit: str = "") -> str:
        """``median (min-max) unit``, e.g. ``6,400 (5,900-7,100)``; one run: just its value."""
        text = format(self.median, spec)
        if len(self.runs) > 1:
            text += f" ({format(self.low, spec)}-{format(self.high, spec)})"
        return f"{text} {unit}" if unit else text

    def map(self, f: Callable[[float], float]) -> Summary:
        """Each run transformed by ``f`` (monotone or not), summarised afresh."""
        return summarise(f(x) for x in self.runs)


def summarise(values: Iterable[float]) -> Summary:
    """The median, min and max of ``values`` (at least one)."""
    runs = tuple(float(v) for v in values)
    if not runs:
        raise ValueError("summarise() needs at least one value")
    return Summary(statistics.median(runs), min(runs), max(runs), runs)


def repeat(measure: Callable[[], float], times: int) -> Summary:
    """Call ``measure()`` ``times`` times and summarise what it returned."""
    return summarise(measure() for _ in range(times))


def interleaved(cases: Mapping[str, Callable[[], T]], times: int) -> dict[str, list[T]]:
    """Run every case once per round, ``times`` rounds: A B C, A B C, ...

    Paired, interleaved repeats spread a shared machine's load drift over all
    cases alike, so their ratio is fairer than back-to-back blocks. Returns each
    case's results in round order; summarise a figure of them with `summarise`.
    """
    results: dict[str, list[T]] = {name: [] for name in cases}
    for round_ in range(times):
        for name, case in cases.items():
            progress(f"    {name}: round {round_ + 1} of {times}")
            results[name].append(case())
    return results


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds used so far by process ``pid`` (default: this one).

    Read with psutil, so it works for a child that is still running: sample it
    before and after a run to get that process's share of a core.
    """
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


# -- markdown ----------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """A markdown table; ``align`` holds one ``l``/``r`` per column (default: first left)."""
    align = align or "l" + "r" * (len(headers) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = [_row(headers), _row(rule)]
    lines.extend(_row([str(cell) for cell in row]) for row in rows)
    return "\n".join(lines)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def verdict(ok: bool) -> str:
    """The PASS/FAIL marker that ``run.py`` counts."""
    return PASS if ok else FAIL


@dataclass(frozen=True)
class Target:
    """One target check: what was required, what was measured, and whether it held."""

    requirement: str
    measured: str
    ok: bool | None  # None: not measured in this run

    def cells(self) -> tuple[str, str, str]:
        """The row of the targets table."""
        result = "not measured" if self.ok is None else verdict(self.ok)
        return self.requirement, self.measured, result


def targets_table(targets: Iterable[Target], *, quick: bool) -> str:
    """The targets block of a section, with a warning when the run was a smoke run."""
    rows = [t.cells() for t in targets]
    text = "**Targets**\n\n" + table(("target", "measured", "result"), rows, "llr")
    if quick:
        text += "\n\n_Quick smoke run with small N: the verdicts above are not meaningful._"
    return text


def count(n: int) -> str:
    """An item count as people say it: 100k, 1M, 2,500."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return f"{n:,}"


def mb(n_bytes: float) -> str:
    """Bytes as whole MB (10^6), the unit the targets are stated in."""
    return f"{round(n_bytes / 1e6):,}"  # round() first: no "-0" for noise below baseline


# -- the OpenAI cookbook script (never shipped), run against the simulator --

#: Run before the cookbook script, unmodified, so that it can reach the simulator:
#: it only parses https:// URLs, and tiktoken cannot fetch its encoding offline.
COOKBOOK_SHIM = """
import re, runpy, sys
_search = re.search
def search(pattern, string, flags=0):
    if isinstance(pattern, str) and pattern.startswith("^https://"):
        pattern = "^https?://" + pattern[len("^https://"):]
    return _search(pattern, string, flags)
re.search = search
script = sys.argv.pop(1)
sys.argv[0] = script
runpy.run_path(script, run_name="__main__")
"""

#: A stand-in for tiktoken when its encoding cannot load offline: the quota's own
#: estimate, four characters a token.
TIKTOKEN_STANDIN = """
class _Encoding:
    def encode(self, text, **_):
        return [0] * -(-len(text) // 4)
def get_encoding(name):
    return _Encoding()
def encoding_for_model(name):
    return _Encoding()
"""


def tiktoken_loads() -> bool:
    """Whether tiktoken is installed and its encoding loads (offline it cannot)."""
    if importlib.util.find_spec("tiktoken") is None:
        return False
    done = subprocess.run(
        [sys.executable, "-c", "import tiktoken; tiktoken.get_encoding('cl100k_base')"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return done.returncode == 0
