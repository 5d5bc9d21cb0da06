"""``anyfan demo``: the same prompts sent one by one, then fanned out with anyfan.

The "API" is a stand-in: an in-process function that answers each prompt
after a seeded random delay, the way a slow network call would. It needs no
key and no network, and every run answers the same prompts with the same
delays, so the timings compare like with like.
"""

from __future__ import annotations

import argparse
import heapq
import importlib.util
import random
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.lowlevel

import anyfan

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

_TOPICS: Final = (
    "Tell me a joke about cats.",
    "What's the capital of France?",
    "Write a short poem about the sea.",
    "Summarise the plot of Hamlet in one line.",
    "Translate 'good morning' into Italian.",
    "Name three prime numbers above 100.",
    "Explain recursion to a five-year-old.",
    "Suggest a name for a grey kitten.",
)

#: Seconds each stand-in call takes: drawn uniformly from this range (scaled by --quick).
LATENCY: Final = (0.2, 0.5)
_QUICK_SCALE: Final = 0.01
_QUICK_PROMPTS: Final = 8


@dataclass(frozen=True)
class StandIn:
    """A slow API in miniature: each prompt is answered after its own fixed delay."""

    latency: dict[str, float]

    @classmethod
    def seeded(cls, prompts: Sequence[str], seed: int, scale: float = 1.0) -> StandIn:
        """Give every prompt a delay drawn from `LATENCY`, reproducibly for one seed."""
        rng = random.Random(seed)
        low, high = LATENCY
        return cls({p: scale * rng.uniform(low, high) for p in prompts})

    @staticmethod
    def answer(prompt: str) -> str:
        """Return the reply the stand-in gives to ``prompt``."""
        return f"(an answer to {prompt!r})"

    async def ask(self, prompt: str) -> str:
        """Answer like an async API client would: suspend for the delay, then reply."""
        await anyio.sleep(self.latency[prompt])
        return self.answer(prompt)

    def ask_blocking(self, prompt: str) -> str:
        """Answer like a blocking API client would: hold the thread for the delay."""
        time.sleep(self.latency[prompt])
        return self.answer(prompt)


@dataclass(frozen=True)
class Row:
    """One timed way of answering all the prompts."""

    label: str
    seconds: float
    ideal: float
    answers: list[str]


def make_prompts(count: int) -> list[str]:
    """``count`` distinct prompts in the spirit of the article's three."""
    return [f"#{i + 1}: {_TOPICS[i % len(_TOPICS)]}" for i in range(count)]


def ideal_seconds(latencies: Sequence[float], concurrency: int) -> float:
    """Wall time of a perfect scheduler giving each free slot the next prompt in order."""
    finish_times = [0.0] * min(concurrency, len(latencies))
    for latency in latencies:
        heapq.heapreplace(finish_times, finish_times[0] + latency)
    return max(finish_times, default=0.0)


def _installed(module: str) -> bool:
    if importlib.util.find_spec(module) is None:
        return False
    # Imported now so that its import time is not charged to a timed run.
    importlib.import_module(module)
    return True


async def _warm_up() -> None:
    await anyio.lowlevel.checkpoint()


def _timed(run: Callable[[], list[str]]) -> tuple[float, list[str]]:
    started = time.perf_counter()
    answers = run()
    return time.perf_counter() - started, answers


async def _sequential(ask: Callable[[str], Any], prompts: list[str]) -> list[str]:
    return [await ask(prompt) for prompt in prompts]


def run_demo(prompts: list[str], api: StandIn, concurrency: int) -> tuple[list[Row], list[str]]:
    """Answer ``prompts`` every available way; return the timed rows and notes for the reader."""
    latencies = [api.latency[p] for p in prompts]
    fanned_ideal = ideal_seconds(latencies, concurrency)
    fan = partial(anyfan.map, concurrency=concurrency)
    label = f"anyfan.map, concurrency {concurrency}"
    plans: list[tuple[str, float, Callable[[], list[str]]]] = [
        (
            "sequential: one await after another",
            sum(latencies),
            lambda: anyio.run(_sequential, api.ask, prompts),
        ),
        (f"{label}, asyncio", fanned_ideal, lambda: anyio.run(fan, api.ask, prompts)),
    ]
    notes: list[str] = []
    if _installed("uvloop"):
        plans.append(
            (
                f"{label}, asyncio + uvloop",
                fanned_ideal,
                lambda: anyio.run(fan, api.ask, prompts, backend_options={"use_uvloop": True}),
            )
        )
    if _installed("trio"):
        trio_run = partial(anyio.run, backend="trio")
        plans.append((f"{label}, trio", fanned_ideal, lambda: trio_run(fan, api.ask, prompts)))
    else:
        notes.append("trio is not installed; `pip install 'anyfan[trio]'` adds the trio run.")
    plans.append(
        (
            f"{label}, blocking function in threads",
            fanned_ideal,
            lambda: anyio.run(fan, api.ask_blocking, prompts),
        )
    )
    # First runs on a backend pay for lazy imports; keep that out of the timings.
    anyio.run(_warm_up)
    if _installed("trio"):
        anyio.run(_warm_up, backend="trio")
    rows = []
    for row_label, ideal, run in plans:
        seconds, answers = _timed(run)
        rows.append(Row(row_label, seconds, ideal, answers))
    return rows, notes


def format_table(rows: Sequence[Row]) -> str:
    """Render rows as an aligned text table with speed-ups against the first row."""
    baseline = rows[0].seconds
    header = ("approach", "wall time", "ideal", "speed-up")
    cells = [
        (row.label, f"{row.seconds:.2f} s", f"{row.ideal:.2f} s", f"{baseline / row.seconds:.1f}x")
        for row in rows
    ]
    width = max(len(c[0]) for c in [header, *cells])
    lines = [f"{header[0]:<{width}}  {header[1]:>9}  {header[2]:>8}  {header[3]:>8}"]
    lines += [f"{a:<{width}}  {b:>9}  {c:>8}  {d:>8}" for a, b, c, d in cells]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``anyfan demo``'s options."""
    parser.add_argument(
        "--prompts", type=_positive_int, default=50, help="how many prompts (default: 50)"
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=anyfan.DEFAULT_CONCURRENCY,
        help=f"calls in flight at once (default: {anyfan.DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed for the stand-in's delays (default: 1)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{_QUICK_PROMPTS} prompts with delays 100x shorter: checks the demo, times nothing",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(args: argparse.Namespace) -> int:
    """Run the demo; exit 1 if any run's answers differ from the sequential ones."""
    count = _QUICK_PROMPTS if args.quick else args.prompts
    scale = _QUICK_SCALE if args.quick else 1.0
    prompts = make_prompts(count)
    api = StandIn.seeded(prompts, args.seed, scale)
    low, high = (scale * bound for bound in LATENCY)
    print(f"anyfan demo: {count} prompts, each answered by a stand-in for a slow API")
    print(f"after a delay of {low:.3g}-{high:.3g} s (seed {args.seed}).", flush=True)
    print()
    rows, notes = run_demo(prompts, api, args.concurrency)
    print(format_table(rows))
    print("(ideal: what a perfect scheduler would take with the same delays)")
    print()
    for note in notes:
        print(note)
    expected = [api.answer(p) for p in prompts]
    wrong = [row.label for row in rows if row.answers != expected]
    if wrong:
        print(f"FAILED: answers missing or out of order in: {'; '.join(wrong)}")
        return 1
    print(f"All {len(rows)} runs returned the same {count} answers, in input order.")
    return 0
