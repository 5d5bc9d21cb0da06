"""Section ``openai`` (issue 4/5): the openai SDK with and without anyfan, against the simulator.

The simulator runs in its own process (``python -m anyfan sim``), so the
client's CPU time is the client's alone, and every client case runs in a fresh
interpreter (this file, run with ``--child``). Each case sends the same chat
requests at the same concurrency; the throughput cases are repeated,
interleaved, and each shows its median run. anyfan's own cost, a few percent,
is smaller than the drift of a shared machine between runs, so it is measured
paired (see `paired`): the bare SDK, the bare SDK again (a control that shows
the noise floor), a plain `anyfan.Fan` and ``anyfan.openai.fan`` alternate in
one process, and the target reads the median of the rounds' ratios. The RPM
case configures the simulator and anyfan with the same requests-per-minute
limit and counts the simulator's 429s.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness
from _harness import Target, count

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable, Iterator

TITLE = "OpenAI SDK through anyfan, against the simulator"
ORDER = 40

THIS = Path(__file__).resolve()

#: anyfan may add less than this share of client CPU per request over the bare SDK,
#: on each transport (judged on the median of the paired rounds).
MAX_CPU_OVERHEAD = 0.05
#: Share of a configured RPM limit that must be achieved with zero 429s.
MIN_RPM_SHARE = 0.97
API_KEY = "sk-bench"


# -- the requests ---------------------------------------------------------------


def chat_requests(n: int) -> list[dict[str, Any]]:
    """``n`` small chat requests, as SDK keyword arguments (and JSON bodies)."""
    return [
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"Question {i}: why is the sky blue?"}],
            "max_tokens": 20,
        }
        for i in range(n)
    ]


# -- inside a child --------------------------------------------------------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sim_call(url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """GET (or POST ``body`` to) one of the simulator's ``/sim/...`` controls."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + path, data=data, method="GET" if data is None else "POST"
    )
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def _client(base_url: str, transport: str) -> Any:
    import openai

    options: dict[str, Any] = {"base_url": base_url, "api_key": API_KEY}
    if transport == "aiohttp":
        options["http_client"] = openai.DefaultAioHttpClient()
    return openai.AsyncOpenAI(**options)


async def bare_gather(client: Any, requests: list[dict[str, Any]], spec: dict[str, Any]) -> Any:
    """The article's way, bounded: one task per request, a semaphore for the concurrency."""
    semaphore = asyncio.Semaphore(spec["concurrency"])

    async def one(request: dict[str, Any]) -> Any:
        async with semaphore:
            return await client.chat.completions.create(**request)

    results = await asyncio.gather(*(one(r) for r in requests), return_exceptions=True)
    return {"errors": sum(isinstance(r, BaseException) for r in results)}


async def anyfan_fan(client: Any, requests: list[dict[str, Any]], spec: dict[str, Any]) -> Any:
    """``anyfan.openai.fan``: limits, retries, header calibration, as a user sets it up."""
    import anyfan.openai

    fan = anyfan.openai.fan(
        client, rpm=spec["rpm"], tpm=spec["tpm"], concurrency=spec["concurrency"]
    )

    async def ask(request: dict[str, Any]) -> Any:
        return await fan.client.chat.completions.create(**request)

    results = await fan.map(ask, requests, errors="return")
    stats = fan.stats
    return {
        "errors": sum(isinstance(r, BaseException) for r in results),
        "retried": stats.retried,
    }


async def anyio_workers(client: Any, requests: list[dict[str, Any]], concurrency: int) -> Any:
    """The floor of anyfan's way: ``concurrency`` anyio tasks sharing one iterator.

    Started all at once, each stores ``out[i] = await call(request)``, as
    issue 13's engine floor does, and nothing else.
    """
    import anyio

    pending = iter(enumerate(requests))
    out: list[Any] = [None] * len(requests)

    async def worker() -> None:
        for i, request in pending:
            try:
                out[i] = await client.chat.completions.create(**request)
            except Exception as exc:
                out[i] = exc

    async with anyio.create_task_group() as group:
        for _ in range(concurrency):
            group.start_soon(worker)
    return {"errors": sum(isinstance(r, BaseException) for r in out)}


CHILD_CASES: dict[str, Callable[[Any, list[dict[str, Any]], dict[str, Any]], Awaitable[Any]]] = {
    "bare": bare_gather,
    "anyfan": anyfan_fan,
}


#: The sides of the paired measure, in the order of its first round. ``control`` is
#: the bare SDK again, on its own client: its ratio to ``bare`` shows the noise floor.
#: ``workers`` drives the bare SDK from plain anyio worker tasks, the way anyfan's
#: engine does, without any of anyfan's code: it tells the cost of that way of
#: driving calls apart from anyfan's own.
SIDES = ("bare", "control", "workers", "engine", "anyfan")


def round_order(round_: int, sides: tuple[str, ...] = SIDES) -> list[str]:
    """The order of the sides in one round: rotated each round, reversed every other one.

    Over the rounds every side runs in every position equally often, both
    before and after each other side (ABBA), so that a drift of the machine
    within a round, or a cost that depends on what ran just before, lands on
    every side alike.
    """
    shift = (round_ // 2) % len(sides)
    order = list(sides[shift:] + sides[:shift])
    return order[::-1] if round_ % 2 else order


def paired(spec: dict[str, Any]) -> dict[str, Any]:
    """Alternate batches of the bare SDK and of anyfan in one process; ratio each round.

    Batches seconds apart see the same machine, so the noise of a shared
    machine, which swamps a few percent between separate runs, mostly cancels
    out in each round's ratio. Every side has its own client, warmed up alike,
    and a Fan built once, as an application builds it; each batch starts from
    a collected heap, and the collector then runs as usual on every side.
    """
    batch = chat_requests(spec["batch"])
    concurrency = spec["concurrency"]

    async def main() -> dict[str, Any]:
        import anyfan
        import anyfan.openai

        spent: dict[str, list[float]] = {side: [] for side in SIDES}
        async with (
            _client(spec["base_url"], spec["transport"]) as bare_client,
            _client(spec["base_url"], spec["transport"]) as control_client,
            _client(spec["base_url"], spec["transport"]) as workers_client,
            _client(spec["base_url"], spec["transport"]) as engine_client,
            _client(spec["base_url"], spec["transport"]) as fan_client,
        ):
            engine = anyfan.Fan(concurrency)
            fan = anyfan.openai.fan(
                fan_client, rpm=spec["rpm"], tpm=spec["tpm"], concurrency=concurrency
            )

            async def engine_ask(request: dict[str, Any]) -> Any:
                return await engine_client.chat.completions.create(**request)

            async def fan_ask(request: dict[str, Any]) -> Any:
                return await fan.client.chat.completions.create(**request)

            async def workers() -> Any:
                return await anyio_workers(workers_client, batch, concurrency)

            async def through(fan: anyfan.Fan, ask: Callable[[Any], Awaitable[Any]]) -> Any:
                results = await fan.map(ask, batch, errors="return")
                return {"errors": sum(isinstance(r, BaseException) for r in results)}

            sides: dict[str, Callable[[], Awaitable[Any]]] = {
                "bare": lambda: bare_gather(bare_client, batch, spec),
                "control": lambda: bare_gather(control_client, batch, spec),
                "workers": workers,
                "engine": lambda: through(engine, engine_ask),
                "anyfan": lambda: through(fan, fan_ask),
            }
            for run in sides.values():
                await run()  # warm-up: connections opened, first-call costs paid
            for round_ in range(spec["rounds"]):
                for side in round_order(round_):
                    # Each side starts from a collected heap: a full collection costs
                    # tens of ms here (the SDK's many objects), and would otherwise be
                    # charged to whichever side happened to trigger it.
                    gc.collect()
                    before = _cpu()
                    outcome = await sides[side]()
                    spent[side].append(_cpu() - before)
                    if outcome["errors"]:
                        return {"error": f"{side}: {outcome['errors']} requests failed"}
            retried = fan.stats.retried
            calls = {side: await _calls_per_request(run, len(batch)) for side, run in sides.items()}
        return {
            "cpu": {side: sum(times) for side, times in spent.items()},
            # Each side's CPU over the bare SDK's in the same round.
            "ratios": {
                side: [mine / bare for mine, bare in zip(times, spent["bare"], strict=True)]
                for side, times in spent.items()
                if side != "bare"
            },
            "requests": spec["batch"] * spec["rounds"],
            "retried": retried,
            "calls": calls,
        }

    return asyncio.run(main())


async def _calls_per_request(run: Callable[[], Awaitable[Any]], requests: int) -> float:
    """Function calls per request of one more batch: the work done, free of timing noise.

    Every Python function entered (a coroutine each time it resumes) and every
    builtin called counts one, through `sys.setprofile`. Unlike CPU time this
    barely moves between runs, so it separates what a side executes from how
    fast the machine happens to execute it.
    """
    count = 0

    def counted(frame: Any, event: str, arg: Any) -> None:
        nonlocal count
        if event == "call" or event == "c_call":
            count += 1

    gc.collect()
    sys.setprofile(counted)
    try:
        await run()
    finally:
        sys.setprofile(None)
    return count / requests


#: The parts of ``anyfan.openai.fan`` measured on their own, in `parts`.
PARTS = (
    ("engine", "the engine alone (`anyfan.Fan`, no options), per call"),
    ("retry", "+ `openai_retry()`: bookkeeping of a call that succeeds, the yield after it"),
    ("rpm", "+ an RPM `Rate`: admit and settle"),
    ("tpm", "+ a TPM `Rate`: estimate, admit, settle from `usage`"),
    ("estimate", "of which `estimate_tokens(request)`"),
    ("actual", "of which the settlement from `usage`"),
    ("headers", "the `x-ratelimit-*` response hook (both rates)"),
    ("sends", "the request hook reporting each send to the slice guard (both rates)"),
    ("whole", "`anyfan.openai.fan(rpm, tpm)` per call, hooks excluded"),
)


def parts(spec: dict[str, Any]) -> dict[str, Any]:
    """Per-call µs of each part of ``anyfan.openai.fan``, around a no-op call.

    Each part is timed in a loop of ``spec["calls"]`` calls, ``spec["repeats"]``
    times; the result holds every repeat, so the report can give the median
    with its min and max. A part that stacks on another (``+``) is reported as
    the difference of the two medians.
    """
    import httpx2

    import anyfan
    import anyfan.openai as ao
    from anyfan._core._rate import Limits
    from anyfan._core._sent import ADMITTED
    from anyfan.openai._fan import _HeaderObserver, _SendWatcher

    n, repeats = spec["calls"], spec["repeats"]
    (request,) = chat_requests(1)
    reply = {"usage": {"prompt_tokens": 20, "completion_tokens": 20, "total_tokens": 40}}
    requests_rate, tokens_rate = ao.request_limits(rpm=10**9, tpm=10**12)
    assert requests_rate is not None
    assert tokens_rate is not None
    response = httpx2.Response(
        200,
        headers={
            "x-ratelimit-limit-requests": "1000000000",
            "x-ratelimit-remaining-requests": "999999999",
            "x-ratelimit-reset-requests": "6ms",
            "x-ratelimit-limit-tokens": "1000000000000",
            "x-ratelimit-remaining-tokens": "999999999960",
            "x-ratelimit-reset-tokens": "1ms",
            "content-type": "application/json",
        },
    )
    observer = _HeaderObserver(requests_rate, tokens_rate)

    async def noop(item: Any) -> Any:
        return reply

    fans: dict[str, Callable[[], Any]] = {
        "engine": lambda: anyfan.Fan(100),
        "retry": lambda: anyfan.Fan(100, retry=ao.openai_retry()),
        "rpm": lambda: anyfan.Fan(100, limits=[ao.request_limits(rpm=10**9)[0]]),
        "tpm": lambda: anyfan.Fan(100, limits=[ao.request_limits(tpm=10**12)[1]]),
        "whole": lambda: ao.fan(None, rpm=10**9, tpm=10**12, concurrency=100, timeout=None),
    }

    watcher = _SendWatcher(traced=False)  # the hook's own moment: no transport involved
    sent = httpx2.Request("POST", "http://sim.invalid/v1/chat/completions")

    async def per_call(name: str) -> float:
        if name == "sends":
            limits = Limits([requests_rate, tokens_rate])
            limits.bind()
            ticket = await limits.acquire(request)
            start = time.perf_counter()
            for _ in range(n):
                ADMITTED.set(ticket)  # as each admission does
                await watcher(sent)
            return (time.perf_counter() - start) / n * 1e6
        if name == "headers":
            start = time.perf_counter()
            for _ in range(n):
                await observer(response)
            return (time.perf_counter() - start) / n * 1e6
        fan = fans[name]()
        items = [request] * n
        start = time.perf_counter()
        await fan.map(noop, items)
        return (time.perf_counter() - start) / n * 1e6

    def loop(fn: Callable[[], object]) -> float:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n * 1e6

    out: dict[str, list[float]] = {name: [] for name, _ in PARTS}
    timed = ("engine", "retry", "rpm", "tpm", "headers", "sends", "whole")
    for name in timed:
        asyncio.run(per_call(name))  # warm-up: first-call costs, caches
    for _ in range(repeats):
        for name in timed:
            out[name].append(asyncio.run(per_call(name)))
        out["estimate"].append(loop(lambda: ao.estimate_tokens(request)))
        out["actual"].append(loop(lambda: tokens_rate.actual_of(request, reply)))
    return {"parts": out}


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one case once in this fresh interpreter; time it and measure its CPU."""
    import openai  # noqa: F401

    import anyfan.openai  # noqa: F401 - imported by every case alike

    if spec["case"] == "paired":
        return paired(spec)
    if spec["case"] == "parts":
        return parts(spec)
    case = CHILD_CASES[spec["case"]]
    requests = chat_requests(spec["n"])
    warm = chat_requests(spec["warm"])

    async def main() -> dict[str, Any]:
        try:
            client = _client(spec["base_url"], spec["transport"])
        except RuntimeError as exc:  # DefaultAioHttpClient without openai[aiohttp]
            return {"absent": str(exc)}
        async with client:
            # Untimed: connections opened and first-call costs paid, under the same
            # limits (fresh ones: the timed run starts with its own, as a new job would).
            await case(client, warm, spec)
            _sim_call(spec["url"], "/sim/reset", {})
            cpu, start = _cpu(), time.perf_counter()
            outcome = await case(client, requests, spec)
            seconds, cpu = time.perf_counter() - start, _cpu() - cpu
        counters = _sim_call(spec["url"], "/sim/counters")
        return {"seconds": seconds, "cpu": cpu, "counters": counters, **outcome}

    return asyncio.run(main())


# -- the simulator, in its own process ------------------------------------------------------


@contextmanager
def simulator(latency_ms: float) -> Iterator[str]:
    """Run ``python -m anyfan sim`` and yield its root URL (``/v1`` is its API)."""
    command = [sys.executable, "-m", "anyfan", "sim", "--ttft-ms", str(latency_ms), "--seed", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "anyfan sim: serving URL"
        if "serving" not in line:
            raise RuntimeError(f"the simulator did not start: {line!r}")
        yield line.split()[-1].removesuffix("/v1")
    finally:
        process.terminate()
        process.wait(timeout=30)


def configure(url: str, *, rpm: int | None) -> None:
    _sim_call(url, "/sim/config", {"limits": {"rpm": rpm, "tpm": None}})


# -- the section -----------------------------------------------------------------------


def add_arguments(parser: argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--openai-n", type=int, metavar="N", help="requests per case (default 3000; --quick 200)"
    )
    parser.add_argument(
        "--openai-concurrency", type=int, metavar="C", help="calls in flight (default 100)"
    )
    parser.add_argument(
        "--openai-latency-ms",
        type=float,
        metavar="MS",
        help="the simulator's latency per request (default 100)",
    )
    parser.add_argument(
        "--openai-repeats", type=int, metavar="R", help="runs of each case (default 3; --quick 1)"
    )
    parser.add_argument(
        "--openai-batch",
        type=int,
        metavar="B",
        help="requests per side in each paired round (default 5 x concurrency)",
    )
    parser.add_argument(
        "--openai-rounds",
        type=int,
        metavar="R",
        help="rounds of the paired measure, per transport (default 64; --quick 4)",
    )
    parser.add_argument(
        "--openai-rpm",
        type=int,
        metavar="RPM",
        help="limit of the RPM case, on both sides (default 3000)",
    )
    parser.add_argument(
        "--cookbook",
        metavar="PATH",
        help="a local copy of the OpenAI cookbook's api_request_parallel_processor.py, "
        "to run in the RPM case (never shipped with anyfan)",
    )


@dataclass(frozen=True)
class Row:
    """One case of the throughput table."""

    key: str
    label: str
    case: str
    transport: str
    anyfan: bool


#: The rows of the paired table, one per side of `paired`.
PAIRED_LABELS = (
    ("bare", "bare SDK + asyncio.gather (+Semaphore)"),
    ("control", "the same again, own client (control: the noise floor)"),
    ("workers", "bare SDK from 100 plain anyio worker tasks (the engine's way, no anyfan)"),
    ("engine", "`anyfan.Fan` (engine alone) around the bare SDK"),
    ("anyfan", "**anyfan.openai.fan**(rpm, tpm)"),
)

ROWS = (
    Row("bare", "bare SDK + asyncio.gather (+Semaphore)", "bare", "httpx", False),
    Row("anyfan", "**anyfan.openai.fan** + SDK", "anyfan", "httpx", True),
    Row("bare_aio", "bare SDK + `DefaultAioHttpClient` + gather", "bare", "aiohttp", False),
    Row(
        "anyfan_aio",
        "**anyfan.openai.fan** + SDK + `DefaultAioHttpClient`",
        "anyfan",
        "aiohttp",
        True,
    ),
)


def run(opts: argparse.Namespace) -> str:
    quick = opts.quick
    n = opts.openai_n or (200 if quick else 3000)
    concurrency = opts.openai_concurrency or (20 if quick else 100)
    latency_ms = opts.openai_latency_ms or (20.0 if quick else 100.0)
    repeats = opts.openai_repeats or (1 if quick else 3)
    rpm = opts.openai_rpm or 3000
    rpm_n = max(20, rpm // 60 * (2 if quick else 12))  # 2 or 12 seconds' worth
    timeout = 300.0

    results: dict[str, list[dict[str, Any]]] = {row.key: [] for row in ROWS}
    with simulator(latency_ms) as url:
        base_url = url + "/v1"
        for rep in range(repeats):
            for row in ROWS:
                spec = {
                    "case": row.case,
                    "transport": row.transport,
                    "url": url,
                    "base_url": base_url,
                    "n": n,
                    "concurrency": concurrency,
                    # Set as a user would, far above what the run reaches: never binding.
                    "rpm": 1_000_000 if row.anyfan else None,
                    "tpm": 1_000_000_000 if row.anyfan else None,
                    "warm": min(n, 2 * concurrency),
                }
                results[row.key].append(_measure(spec, timeout))
                _harness.progress(
                    f"  openai [{rep + 1}/{repeats}] {row.key}: {_brief(results[row.key][-1], n)}"
                )

        pairs = {}
        batch = opts.openai_batch or (2 * concurrency if quick else 5 * concurrency)
        # 64 rounds: one round's ratio strays by 10-20% on a shared machine (the control
        # side shows it), so the median of 32 still moved by 2-3 points between sittings.
        rounds = opts.openai_rounds or (4 if quick else 64)
        for transport in ("httpx", "aiohttp"):
            spec = {
                "case": "paired",
                "transport": transport,
                "url": url,
                "base_url": base_url,
                # Batches of several waves, so that each run's start (every side
                # starts its 100 calls afresh) weighs little, and enough rounds that
                # the median of their ratios shrugs off the few a neighbour's burst
                # of CPU happened to land in.
                "batch": batch,
                "rounds": rounds,
                "concurrency": concurrency,
                "rpm": 1_000_000,
                "tpm": 1_000_000_000,
            }
            pairs[transport] = _measure(spec, timeout * 4)
            _harness.progress(f"  openai paired ({transport}): {_brief_pair(pairs[transport])}")
        costs = _measure(
            {"case": "parts", "calls": 2_000 if quick else 20_000, "repeats": 3 if quick else 7},
            timeout,
        )
        _harness.progress(f"  openai parts: {_brief_parts(costs)}")

        configure(url, rpm=rpm)
        spec = {
            "case": "anyfan",
            "transport": "httpx",
            "url": url,
            "base_url": base_url,
            "n": rpm_n,
            "concurrency": concurrency,
            "rpm": rpm,
            "tpm": None,
            "warm": 10,
        }
        # Repeated like the throughput cases: a target is never judged on one run.
        limited = []
        for rep in range(repeats):
            limited.append(_measure(spec, timeout + rpm_n * 60 / rpm))
            _harness.progress(
                f"  openai rpm-limited anyfan [{rep + 1}/{repeats}]: {_brief(limited[-1], rpm_n)}"
            )
        cookbook: dict[str, Any] | None = None
        if opts.cookbook:
            cookbook = run_cookbook(Path(opts.cookbook), url, rpm, rpm_n, timeout)
            _harness.progress(f"  openai rpm-limited cookbook: {_brief(cookbook, rpm_n)}")
        configure(url, rpm=None)

    return _render(
        results,
        pairs,
        costs,
        limited,
        cookbook,
        opts.cookbook,
        n=n,
        concurrency=concurrency,
        latency_ms=latency_ms,
        repeats=repeats,
        rpm=rpm,
        rpm_n=rpm_n,
        quick=quick,
        paired_batch=batch,
        paired_rounds=rounds,
    )


def _measure(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    try:
        return _harness.run_child(THIS, spec, timeout=timeout)
    except _harness.ChildError as exc:
        return {"error": str(exc)}


def _spread(pair: dict[str, Any], side: str) -> tuple[float, float, float] | None:
    """A side's extra CPU over the bare SDK's: the median, least and most of the rounds."""
    ratios = pair.get("ratios", {}).get(side)
    if not ratios:
        return None
    return _median(ratios) - 1, min(ratios) - 1, max(ratios) - 1


def _overhead(pair: dict[str, Any]) -> float | None:
    """anyfan's extra CPU over the bare SDK: the median over pairs, robust to a noisy round."""
    spread = _spread(pair, "anyfan")
    return None if spread is None else spread[0]


def _pct(spread: tuple[float, float, float]) -> str:
    return f"{spread[0]:+.1%} ({spread[1]:+.1%} to {spread[2]:+.1%})"


def _brief_pair(pair: dict[str, Any]) -> str:
    if _overhead(pair) is None:
        return str(pair.get("error"))
    parts = []
    for side in SIDES[1:]:
        spread = _spread(pair, side)
        assert spread is not None
        parts.append(f"{side} {_pct(spread)}")
    return "over bare, median of rounds: " + ", ".join(parts)


def _calls_cell(calls: dict[str, float], side: str) -> str:
    """A side's function calls per request, and for the others their excess over the bare SDK's."""
    mine, bare = calls.get(side), calls.get("bare")
    if mine is None or bare is None:
        return ""
    if side == "bare":
        return f"{mine:,.0f}"
    return f"{mine:,.0f} ({mine - bare:+,.0f}, {mine / bare - 1:+.1%})"


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _brief_parts(costs: dict[str, Any]) -> str:
    if "parts" not in costs:
        return str(costs.get("error"))
    return ", ".join(f"{name} {_median(v):.1f}" for name, v in costs["parts"].items()) + " µs"


def _parts_table(costs: dict[str, Any], bare_us: float | None) -> str:
    """Each part's µs per call (median, min to max), and its share of a bare SDK request."""
    if "parts" not in costs:
        return f"not measured: {costs.get('error')}"
    runs: dict[str, list[float]] = costs["parts"]
    medians = {name: _median(values) for name, values in runs.items()}
    base = {"retry": "engine", "rpm": "engine", "tpm": "engine"}
    rows = []
    for name, label in PARTS:
        values = runs[name]
        shown = medians[name] - medians[base[name]] if name in base else medians[name]
        spread = f"{min(values):.1f} to {max(values):.1f}"
        if name in base:
            spread += f" (total; {base[name]} {medians[base[name]]:.1f})"
        share = "" if bare_us is None else f"{shown / bare_us:.2%}"
        rows.append((label, f"{shown:.1f}", spread, share))
    return _harness.table(
        ("part", "µs per call (median)", "min to max of runs", "share of a bare SDK request"), rows
    )


def _brief(result: dict[str, Any], n: int) -> str:
    if "error" in result or "absent" in result:
        return result.get("error") or f"absent ({result['absent']})"
    return (
        f"{n / result['seconds']:.0f} req/s, {result['cpu'] / n * 1e6:.0f} µs CPU/req, "
        f"{result['counters']['rate_limited']} 429s"
    )


# -- the cookbook script, when given ---------------------------------------------------------


def run_cookbook(script: Path, url: str, rpm: int, n: int, timeout: float) -> dict[str, Any]:
    """Run the cookbook script over ``n`` requests at ``rpm``; return its time, CPU and 429s."""
    if not script.is_file():
        return {"error": f"{script} is not a file"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        requests = folder / "requests.jsonl"
        requests.write_text(
            "".join(json.dumps(r) + "\n" for r in chat_requests(n)), encoding="utf-8"
        )
        (folder / "shim.py").write_text(_harness.COOKBOOK_SHIM, encoding="utf-8")
        env = dict(os.environ, OPENAI_API_KEY=API_KEY, PYTHONPATH=str(folder))
        if not _harness.tiktoken_loads():
            (folder / "tiktoken.py").write_text(_harness.TIKTOKEN_STANDIN, encoding="utf-8")
        command = [
            sys.executable,
            str(folder / "shim.py"),
            str(script),
            "--requests_filepath",
            str(requests),
            "--save_filepath",
            str(folder / "results.jsonl"),
            "--request_url",
            url + "/v1/chat/completions",
            "--max_requests_per_minute",
            str(rpm),
            "--max_tokens_per_minute",
            str(10**9),
            "--token_encoding_name",
            "cl100k_base",
            "--max_attempts",
            "5",
            "--logging_level",
            "40",
        ]
        _sim_call(url, "/sim/reset", {})
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return {"error": f"exit {done.returncode}: {tail}"}
        answered = len((folder / "results.jsonl").read_text(encoding="utf-8").splitlines())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    counters = _sim_call(url, "/sim/counters")
    return {"seconds": seconds, "cpu": cpu, "counters": counters, "answered": answered}


# -- the document ------------------------------------------------------------------------------


def _good(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs that finished without failed requests, least CPU first."""
    return sorted((r for r in runs if "seconds" in r and not r.get("errors")), key=_cpu_of)


def _cpu_of(run: dict[str, Any]) -> float:
    cpu: float = run["cpu"]
    return cpu


def _cpu_cell(good: list[dict[str, Any]], n: int) -> str:
    """The median run's CPU per request, with the least and most of the runs."""
    us = [run["cpu"] / n * 1e6 for run in good]
    median = f"{us[(len(us) - 1) // 2]:,.0f}"
    return median if len(us) == 1 else f"{median} ({us[0]:,.0f} to {us[-1]:,.0f})"


def _typical(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The run of median CPU (the lower of the two middle ones for an even count)."""
    good = _good(runs)
    return good[(len(good) - 1) // 2] if good else None


def _render(
    results: dict[str, list[dict[str, Any]]],
    pairs: dict[str, dict[str, Any]],
    costs: dict[str, Any],
    limited: list[dict[str, Any]],
    cookbook: dict[str, Any] | None,
    cookbook_path: str | None,
    *,
    n: int,
    concurrency: int,
    latency_ms: float,
    repeats: int,
    rpm: int,
    rpm_n: int,
    quick: bool,
    paired_batch: int,
    paired_rounds: int,
) -> str:
    ideal = -(-n // concurrency) * latency_ms / 1000
    rows = []
    notes: list[str] = []
    for row in ROWS:
        runs = results[row.key]
        chosen = _typical(runs)
        if chosen is None:
            problem = next((r.get("absent") or r.get("error") for r in runs), None)
            problem = problem or "failed requests"
            notes.append(f"{row.key}: {problem}")
            rows.append((row.label, f"absent or failed ({len(notes)})", "", "", "", ""))
            continue
        counters = chosen["counters"]
        rows.append(
            (
                row.label,
                f"{n / chosen['seconds']:,.0f}",
                _cpu_cell(_good(runs), n),
                f"{chosen['seconds']:.2f}",
                f"{chosen['seconds'] / ideal:.2f}x",
                f"{counters['cpu_share'] * 100:.0f}%",
            )
        )
    throughput = _harness.table(
        ("client", "req/s", "client CPU µs/req", "wall s", "wall / ideal", "simulator CPU"),
        rows,
    )

    limited_rows = [_limited_runs_row("**anyfan.openai.fan(rpm=…)**", limited, rpm, rpm_n)]
    if cookbook is not None:
        limited_rows.append(
            _limited_row("cookbook `api_request_parallel_processor.py`", cookbook, rpm, rpm_n)
        )
    else:
        limited_rows.append(
            (
                "cookbook `api_request_parallel_processor.py`",
                "absent: run with `--cookbook PATH` to include it",
                "",
                "",
                "",
                "",
            )
        )
    limited_table = _harness.table(
        ("client", "429s", "answered", "achieved RPM", "share of limit", "wall s"), limited_rows
    )

    pair_rows = []
    for transport, label in (
        ("httpx", "SDK default (httpx2 or httpx)"),
        ("aiohttp", "`DefaultAioHttpClient`"),
    ):
        pair = pairs[transport]
        if _overhead(pair) is None:
            pair_rows.append((label, f"error: {pair.get('error')}", "", "", "", "", ""))
            continue
        requests = pair["requests"]
        bare_cpu = pair["cpu"]["bare"]
        calls = pair.get("calls", {})
        for side, side_label in PAIRED_LABELS:
            us = f"{pair['cpu'][side] / requests * 1e6:,.0f}"
            spread = _spread(pair, side)
            work = _calls_cell(calls, side)
            if spread is None:
                pair_rows.append((label, side_label, us, "", "", "", work))
                continue
            pair_rows.append(
                (
                    label,
                    side_label,
                    us,
                    f"**{spread[0]:+.1%}**" if side == "anyfan" else f"{spread[0]:+.1%}",
                    f"{spread[1]:+.1%} to {spread[2]:+.1%}",
                    f"{pair['cpu'][side] / bare_cpu - 1:+.1%}",
                    work,
                )
            )
    paired_table = _harness.table(
        (
            "transport",
            "side",
            "CPU µs/req",
            "over the bare SDK, median of rounds",
            "least to most of rounds",
            "over the bare SDK, all rounds",
            "function calls per request (over the bare SDK)",
        ),
        pair_rows,
    )
    aio = pairs["aiohttp"]
    bare_us = aio["cpu"]["bare"] / aio["requests"] * 1e6 if "cpu" in aio else None
    parts_table = _parts_table(costs, bare_us)
    rpm_ok = None
    rpm_text = next((r["error"] for r in limited if "error" in r), "not measured")
    if limited and all("seconds" in r for r in limited):
        shares = sorted(_share(r, rpm, rpm_n) for r in limited)
        share = _median(shares)
        limit_429 = sum(r["counters"]["rate_limited"] for r in limited)
        failed = sum(r.get("errors", 0) for r in limited)
        rpm_ok = limit_429 == 0 and share >= MIN_RPM_SHARE and not failed
        rpm_text = f"{limit_429} 429s at {share:.1%} of {rpm:,} RPM"
        if len(shares) > 1:
            rpm_text = (
                f"{limit_429} 429s in {len(shares)} runs, at {share:.1%} ({shares[0]:.1%} to "
                f"{shares[-1]:.1%}) of {rpm:,} RPM, median run (least to most)"
            )
    targets = []
    for transport, label in (("httpx", "default transport"), ("aiohttp", "DefaultAioHttpClient")):
        pair = pairs[transport]
        overhead = _overhead(pair)
        measured = "not measured"
        anyfan_spread, control = _spread(pair, "anyfan"), _spread(pair, "control")
        if anyfan_spread is not None and control is not None:
            measured = (
                f"{_pct(anyfan_spread)}, median of {len(pair['ratios']['anyfan'])} paired "
                f"rounds (least to most); bare against bare {_pct(control)}"
            )
        targets.append(
            Target(
                f"anyfan adds < {MAX_CPU_OVERHEAD:.0%} client CPU per request over the bare "
                f"SDK (paired, {label})",
                measured,
                None if overhead is None else overhead < MAX_CPU_OVERHEAD,
            )
        )
    targets += [
        Target(
            f"zero 429s at ≥ {MIN_RPM_SHARE:.0%} of a configured RPM limit",
            rpm_text,
            rpm_ok,
        ),
    ]

    method = (
        f"{count(n)} chat requests (`max_tokens=20`) per case at concurrency {concurrency}, "
        f"against `python -m anyfan sim` in its own process answering each after "
        f"{latency_ms:g} ms, so the ideal wall time is ceil(N / concurrency) * latency = "
        f"{ideal:.2f} s. Each client runs in a fresh interpreter on asyncio, with an untimed "
        f"warm-up; client CPU is that process's user + system time over the timed run. The "
        f"throughput cases ran {repeats} time(s), interleaved; each row shows its run of "
        f"median CPU (the CPU column: median, then least to most of the runs). anyfan's rows "
        f"set `rpm` and `tpm` far above what is reached, so the limiter, token estimates, "
        f"header calibration, the send hook and retry bookkeeping all run without ever "
        f"holding a call back. Separate runs minutes apart differ by more than the few "
        f"percent anyfan costs, so its overhead is measured paired: one process runs "
        f"{paired_rounds} rounds per transport; in each, five sides send the same "
        f"{paired_batch:,} requests in turn, each with its own warm client (and, for the "
        f"anyfan sides, a Fan built once, as an application builds it), in an order rotated "
        f"every round and reversed every other one (ABBA), each from a collected heap (a full "
        f"collection, tens of ms with the SDK loaded, would otherwise land on either side at "
        f"random). Each side's CPU is divided by the bare SDK's of the same round, and a "
        f"target reads the median of those ratios. The control side is the bare SDK again, so "
        f"its ratio shows how far apart two identical sides land: differences within it are "
        f"noise. The workers side drives the bare SDK from {concurrency} plain anyio tasks "
        f"sharing one iterator, as anyfan's engine does, with none of anyfan's code: its gap "
        f"to the bare SDK is the cost of long-lived workers instead of a task per call. "
        f"Batches are {paired_batch // concurrency} waves long, because every side "
        f"starts its calls afresh each round, so shorter batches would weigh that start "
        f"more than a real job does. The RPM case sends {rpm_n:,} requests with the same "
        f"{rpm:,} RPM limit on the simulator (enforced in 1-second slices) and on the client, "
        f"{repeats} time(s), each in a fresh interpreter with a fresh Fan; achieved RPM is "
        f"requests / wall time, and the target reads the median run."
    )
    if cookbook_path:
        method += (
            " The cookbook script ran unmodified, through a shim that lets its https-only URL "
            "parsing accept the simulator's http URL (and, where tiktoken cannot load its "
            "encoding offline, a stand-in counting four characters a token)."
        )
    parts = [
        f"## {TITLE}",
        method,
        throughput,
        "anyfan's own cost, paired (CPU µs per request over all rounds; each side against "
        "the bare SDK in the same round):",
        paired_table,
        "The last column counts the work each side does rather than timing it: every "
        "Python function entered (a coroutine each time it resumes) and every builtin "
        "called during one more batch, through `sys.setprofile`, per request. Two "
        "identical sides differ by about 1% (the control row). It counts calls, not what "
        "each costs, but the SDK's own calls are the same on every side, so a side's "
        "excess is its own code; where its CPU is further over the bare SDK's than that, "
        "the rest is the same code running slower (see docs/explanation/performance.md).",
        "anyfan's own cost, part by part, around a no-op call (in one process; the share is "
        "of the bare SDK's CPU per request with `DefaultAioHttpClient`, the leaner transport):",
        parts_table,
        "Around a real request the same code costs several times its no-op figure (colder "
        "caches, more collections of a heap full of the SDK's objects), so these figures rank "
        "the parts, and the paired table gives the total.",
        "Under an RPM limit:",
        limited_table,
    ]
    if notes:
        parts.append("\n".join(f"({i}) {note}" for i, note in enumerate(notes, 1)))
    parts.append(_harness.targets_table(targets, quick=quick))
    return "\n\n".join(parts)


def _share(result: dict[str, Any], rpm: int, n: int) -> float:
    """The share of the RPM limit one run achieved: requests / wall time, against the limit."""
    return n / result["seconds"] * 60 / rpm


def _limited_runs_row(
    label: str, runs: list[dict[str, Any]], rpm: int, n: int
) -> tuple[str, str, str, str, str, str]:
    """The RPM case's row: its median run, with the least and most of the runs."""
    failed = next((r for r in runs if "seconds" not in r), None)
    if failed is not None or not runs:
        return _limited_row(label, failed or {"error": "not run"}, rpm, n)
    ordered = sorted(runs, key=lambda r: _share(r, rpm, n))
    row = _limited_row(label, ordered[(len(ordered) - 1) // 2], rpm, n)
    if len(ordered) == 1:
        return row
    low, high = ordered[0], ordered[-1]
    return (
        f"{label}, median of {len(runs)} runs (least to most)",
        f"{sum(r['counters']['rate_limited'] for r in runs):,} in all",
        row[2],
        f"{row[3]} ({_share(low, rpm, n) * rpm:,.0f} to {_share(high, rpm, n) * rpm:,.0f})",
        f"{row[4]} ({_share(low, rpm, n):.1%} to {_share(high, rpm, n):.1%})",
        f"{row[5]} ({high['seconds']:.1f} to {low['seconds']:.1f})",
    )


def _limited_row(
    label: str, result: dict[str, Any], rpm: int, n: int
) -> tuple[str, str, str, str, str, str]:
    if "seconds" not in result:
        return (label, f"error: {result.get('error')}", "", "", "", "")
    answered = result.get("answered", n - result.get("errors", 0))
    achieved = answered / result["seconds"] * 60
    return (
        label,
        f"{result['counters']['rate_limited']:,}",
        f"{answered:,} of {n:,}",
        f"{achieved:,.0f}",
        f"{achieved / rpm:.1%}",
        f"{result['seconds']:.1f}",
    )


if __name__ == "__main__" and "--child" in sys.argv:
    _harness.child_main(child)
