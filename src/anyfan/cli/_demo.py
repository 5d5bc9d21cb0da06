"""``anyfan demo``: the article's story, replayed on the embedded OpenAI-compatible simulator.

It starts the simulator on 127.0.0.1 (no API key, no network), sends the same
chat prompts one after another and then fanned out every way anyfan offers
(asyncio, trio, the blocking facade, the batch CLI's path), and prints the
timings. Then it sends a burst at a provider-style RPM limit: once without a
limit, drawing 429s, and once paced by anyfan, drawing none. The simulator's
replies are a fixed function of each request, so every way must return the
very same replies, in input order.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import anyio

import anyfan

from ..batch import BatchJob, SendSettings, send
from ..transport import open_transport
from ._run import run_on

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..sim import Simulator

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
MODEL: Final = "gpt-4o-mini"
KEY: Final = "sk-anyfan-demo"


@dataclass(frozen=True)
class Scale:
    """How big the demo is: full, or ``--quick`` (checks the demo, times nothing).

    Attributes:
        prompts: Prompts in the timed comparison.
        ttft_ms: The simulator's time to first token.
        itl_ms: Its time per generated token (replies are 10-40 tokens).
        rpm: The RPM limit of the rate-limit part.
        burst: Requests sent at that limit.
    """

    prompts: int
    ttft_ms: float
    itl_ms: float
    rpm: int
    burst: int


FULL: Final = Scale(prompts=30, ttft_ms=150.0, itl_ms=8.0, rpm=1200, burst=100)
QUICK: Final = Scale(prompts=8, ttft_ms=2.0, itl_ms=0.05, rpm=6000, burst=130)


@dataclass(frozen=True)
class Row:
    """One timed way of answering all the prompts."""

    label: str
    seconds: float
    answers: list[str]


def make_prompts(count: int) -> list[str]:
    """``count`` distinct prompts in the spirit of the article's three."""
    return [f"#{i + 1}: {_TOPICS[i % len(_TOPICS)]}" for i in range(count)]


def request_body(prompt: str) -> dict[str, Any]:
    """The chat request for ``prompt``, as the article's call makes it."""
    return {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": 50}


def reply_of(body: Any) -> str:
    """The reply text of a chat completion (decoded JSON or raw bytes)."""
    if isinstance(body, bytes | str):
        body = json.loads(body)
    return str(body["choices"][0]["message"]["content"]).strip()


def _headers(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def ask_blocking(url: str, prompt: str) -> str:
    """One blocking call, like the article's ``openai.Completion.create``."""
    data = json.dumps(request_body(prompt)).encode()
    request = urllib.request.Request(url, data=data, headers=_headers(), method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return reply_of(response.read())


async def fan_out(url: str, prompts: list[str], concurrency: int) -> list[str]:
    """``anyfan.map`` over async calls through the lean transport, replies in input order."""
    async with open_transport(_headers(), concurrency) as http:

        async def ask(prompt: str) -> str:
            response = await http.post(url, json.dumps(request_body(prompt)).encode())
            return reply_of(response.body)

        return await anyfan.map(ask, prompts, concurrency=concurrency)


def batch_path(
    base_url: str,
    prompts: list[str],
    workdir: Path,
    concurrency: int,
    *,
    rpm: float | None = None,
    key: str = KEY,
) -> tuple[list[str], int]:
    """Answer the prompts the way ``anyfan run`` does; return the replies and the 429s seen."""
    source, results = workdir / f"requests-{key}.jsonl", workdir / f"results-{key}.jsonl"
    source.write_text("".join(json.dumps(request_body(p)) + "\n" for p in prompts))
    settings = SendSettings(base_url, _headers(key), concurrency=concurrency, rpm=rpm)
    with BatchJob.open(source, results, {"base_url": base_url}, restart=True) as job:
        run_on("asyncio", send, job, settings)
        limited = job.counters.rate_limited
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    lines.sort(key=lambda result: result["line"])
    return [reply_of(result["response"]["body"]) for result in lines], limited


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def compare(
    sim: Simulator, prompts: list[str], concurrency: int, workdir: Path
) -> tuple[list[Row], list[str]]:
    """Answer ``prompts`` every available way; return the timed rows and notes for the reader."""
    url = sim.base_url + "/chat/completions"
    notes: list[str] = []
    plans: list[tuple[str, Callable[[list[str]], list[str]]]] = [
        (
            "sequential: one blocking call after another",
            lambda ps: [ask_blocking(url, p) for p in ps],
        )
    ]
    plans.append(
        (
            f"anyfan.map on asyncio (built-in HTTP client), concurrency {concurrency}",
            lambda ps: run_on("asyncio", fan_out, url, ps, concurrency),
        )
    )
    if _installed("trio"):  # the built-in HTTP client runs on trio too
        plans.append(
            (
                f"anyfan.map on trio (built-in HTTP client), concurrency {concurrency}",
                lambda ps: anyio.run(fan_out, url, ps, concurrency, backend="trio"),
            )
        )
    else:
        notes.append("trio is not installed: pip install 'anyfan[trio]'.")
    plans.append(
        (
            f"anyfan.blocking.map, blocking calls in threads, concurrency {concurrency}",
            lambda ps: _blocking(url, ps, concurrency),
        )
    )
    plans.append(
        (
            f"anyfan run's path (the batch CLI), concurrency {concurrency}",
            lambda ps: batch_path(sim.base_url, ps, workdir, concurrency)[0],
        )
    )
    # One untimed call each first: imports, loop start-up and connection set-up are
    # paid once per program, not per fan-out.
    for _, run in plans:
        run(prompts[:1])
    rows = []
    for label, run in plans:
        started = time.perf_counter()
        answers = run(prompts)
        rows.append(Row(label, time.perf_counter() - started, answers))
    return rows, notes


def _blocking(url: str, prompts: list[str], concurrency: int) -> list[str]:
    with anyfan.blocking.Loop() as loop:
        return anyfan.blocking.map(
            lambda prompt: ask_blocking(url, prompt), prompts, concurrency=concurrency, loop=loop
        )


def format_table(rows: Sequence[Row]) -> str:
    """Render rows as an aligned text table with speed-ups against the first row."""
    baseline = rows[0].seconds
    header = ("approach", "wall time", "speed-up")
    cells = [(r.label, f"{r.seconds:.2f} s", f"{baseline / r.seconds:.1f}x") for r in rows]
    width = max(len(c[0]) for c in [header, *cells])
    lines = [f"{header[0]:<{width}}  {header[1]:>9}  {header[2]:>8}"]
    lines += [f"{a:<{width}}  {b:>9}  {c:>8}" for a, b, c in cells]
    return "\n".join(lines)


async def _burst(url: str, count: int) -> list[int]:
    """Send ``count`` requests at once with no limit and no retry; return their statuses."""
    async with open_transport(_headers("sk-anyfan-demo-burst"), count) as http:

        async def send(n: int) -> int:
            body = json.dumps(request_body(f"burst #{n}")).encode()
            return (await http.post(url, body)).status

        return await anyfan.map(send, range(count), concurrency=count)


def rate_limit_story(sim: Simulator, scale: Scale, workdir: Path) -> bool:
    """Send a burst at an RPM limit without and with anyfan's pacing.

    Returns whether the paced run answered everything without a single 429.
    """
    rpm, count = scale.rpm, scale.burst
    per_second = rpm // 60
    sim.set_limits(rpm=rpm)
    print(
        f"The same simulator now allows {rpm:,} requests per minute per key, enforced per "
        f"second\n({per_second} per second), as the provider does. {count} requests:"
    )
    statuses = run_on("asyncio", _burst, sim.base_url + "/chat/completions", count)
    refused = statuses.count(429)
    print(
        f"  all at once, no limit (asyncio.gather style): {refused} x 429, "
        f"{statuses.count(200)} answered"
    )
    prompts = [f"paced #{n}" for n in range(count)]
    started = time.perf_counter()
    answers, limited = batch_path(
        sim.base_url, prompts, workdir, min(count, 64), rpm=rpm, key="sk-anyfan-demo-paced"
    )
    seconds = time.perf_counter() - started
    ideal = (count - 1) / per_second
    print(
        f"  anyfan run --rpm {rpm}: {limited} x 429, {len(answers)} answered in {seconds:.1f} s "
        f"(the limit allows {ideal:.1f} s)"
    )
    return limited == 0 and len(answers) == count


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``anyfan demo``'s options."""
    parser.add_argument(
        "--prompts",
        type=_positive_int,
        default=FULL.prompts,
        help=f"how many prompts (default: {FULL.prompts})",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=anyfan.DEFAULT_CONCURRENCY,
        help=f"calls in flight at once (default: {anyfan.DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the simulator's replies (default: 1)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK.prompts} prompts, a near-instant simulator: checks the demo, times nothing",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(args: argparse.Namespace) -> int:
    """Run the demo; exit 1 if any way's replies differ or the paced run drew a 429."""
    if not (_installed("uvicorn") and _installed("httptools")):
        print("anyfan demo: error: the demo runs on the simulator: pip install 'anyfan[sim]'")
        return 2
    from ..sim import Latency, Simulator

    scale = QUICK if args.quick else Scale(**{**FULL.__dict__, "prompts": args.prompts})
    prompts = make_prompts(scale.prompts)
    latency = Latency(ttft_ms=scale.ttft_ms, itl_ms=scale.itl_ms, jitter=0.3)
    with Simulator(latency=latency, seed=args.seed) as sim, tempfile.TemporaryDirectory() as tmp:
        low = (scale.ttft_ms + 10 * scale.itl_ms) * 0.7 / 1000
        high = (scale.ttft_ms + 40 * scale.itl_ms) * 1.3 / 1000
        print(f"anyfan demo: {len(prompts)} chat prompts to an OpenAI-compatible simulator at")
        print(f"{sim.base_url} (seed {args.seed}); each reply takes {low:.2g}-{high:.2g} s.")
        print()
        rows, notes = compare(sim, prompts, args.concurrency, Path(tmp))
        print(format_table(rows))
        print()
        for note in notes:
            print(note)
        wrong = [row.label for row in rows if row.answers != rows[0].answers]
        if wrong:
            print(f"FAILED: replies missing or out of order in: {'; '.join(wrong)}")
            return 1
        print(f"All {len(rows)} ways returned the same {len(prompts)} replies, in input order.")
        print()
        if not rate_limit_story(sim, scale, Path(tmp)):
            print("FAILED: the paced run drew a 429 or lost a request")
            return 1
    return 0
