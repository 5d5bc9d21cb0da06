"""Section ``openai`` (issue 4/5): the openai SDK with and without anyfan, against the simulator.

The simulator runs in its own process (``python -m anyfan sim``), so the
client's CPU time is the client's alone, and every client case runs in a fresh
interpreter (this file, run with ``--child``). Each case sends the same chat
requests at the same concurrency; the throughput cases are repeated,
interleaved, and each keeps its least CPU per request, which filters out the
noise of a shared machine. The RPM case configures the simulator and anyfan
with the same requests-per-minute limit and counts the simulator's 429s.
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


async def engine_only(client: Any, requests: list[dict[str, Any]], spec: dict[str, Any]) -> Any:
    """A plain ``anyfan.Fan`` (no limits, retries or hooks) around the bare SDK client.

    Paired with the others, it splits anyfan's cost into the engine's share and
    the OpenAI adapter's (limits, estimates, retries, the header hook).
    """
    import anyfan

    fan = anyfan.Fan(spec["concurrency"])

    async def ask(request: dict[str, Any]) -> Any:
        return await client.chat.completions.create(**request)

    results = await fan.map(ask, requests, errors="return")
    return {"errors": sum(isinstance(r, BaseException) for r in results)}


CHILD_CASES: dict[str, Callable[[Any, list[dict[str, Any]], dict[str, Any]], Awaitable[Any]]] = {
    "bare": bare_gather,
    "anyfan": anyfan_fan,
}


def paired(spec: dict[str, Any]) -> dict[str, Any]:
    """Alternate batches of the bare SDK and of anyfan in one process; sum each one's CPU.

    Batches a fraction of a second apart see the same machine, so the noise of
    a shared machine, which swamps a few percent between separate runs, mostly
    cancels out. Each side has its own client, warmed up alike, and starts
    each batch from a collected heap (see the loop).
    """
    batch = chat_requests(spec["batch"])
    limits = {"rpm": spec["rpm"], "tpm": spec["tpm"]}

    async def main() -> dict[str, Any]:
        cpu = {"bare": 0.0, "engine": 0.0, "anyfan": 0.0}
        ratios: dict[str, list[float]] = {"engine": [], "anyfan": []}
        async with (
            _client(spec["base_url"], spec["transport"]) as bare_client,
            _client(spec["base_url"], spec["transport"]) as engine_client,
            _client(spec["base_url"], spec["transport"]) as fan_client,
        ):
            sides: dict[str, Callable[[], Awaitable[Any]]] = {
                "bare": lambda: bare_gather(bare_client, batch, spec),
                "engine": lambda: engine_only(engine_client, batch, spec),
                "anyfan": lambda: anyfan_fan(fan_client, batch, {**spec, **limits}),
            }
            for run in sides.values():
                await run()  # warm-up
            names = list(sides)
            for round_ in range(spec["rounds"]):
                shift = round_ % len(names)
                order = names[shift:] + names[:shift]
                spent: dict[str, float] = {}
                for side in order:
                    # Each side starts from a collected heap: a full collection costs
                    # tens of ms here (the SDK's many objects), and would otherwise be
                    # charged to whichever side happened to trigger it.
                    gc.collect()
                    before = _cpu()
                    outcome = await sides[side]()
                    spent[side] = _cpu() - before
                    if outcome["errors"]:
                        return {"error": f"{side}: {outcome['errors']} requests failed"}
                for side in cpu:
                    cpu[side] += spent[side]
                for side, kept in ratios.items():
                    kept.append(spent[side] / spent["bare"])
        for kept in ratios.values():
            kept.sort()
        middle = spec["rounds"] // 2
        return {
            "bare_cpu": cpu["bare"],
            "engine_cpu": cpu["engine"],
            "anyfan_cpu": cpu["anyfan"],
            "median_ratio": ratios["anyfan"][middle],
            "min_ratio": ratios["anyfan"][0],
            "max_ratio": ratios["anyfan"][-1],
            "engine_median_ratio": ratios["engine"][middle],
            "requests": spec["batch"] * spec["rounds"],
        }

    return asyncio.run(main())


#: The parts of ``anyfan.openai.fan`` measured on their own, in `parts`.
PARTS = (
    ("engine", "the engine alone (`anyfan.Fan`, no options), per call"),
    ("retry", "+ `openai_retry()` bookkeeping of a call that succeeds"),
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
        for transport in ("httpx", "aiohttp"):
            spec = {
                "case": "paired",
                "transport": transport,
                "url": url,
                "base_url": base_url,
                # Many short rounds: the median of their ratios shrugs off the
                # rounds a neighbour's burst of CPU happened to land in.
                "batch": max(concurrency, n // 20),
                "rounds": 6 if quick else 30,
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
        limited = _measure(spec, timeout + rpm_n * 60 / rpm)
        _harness.progress(f"  openai rpm-limited anyfan: {_brief(limited, rpm_n)}")
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
    )


def _measure(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    try:
        return _harness.run_child(THIS, spec, timeout=timeout)
    except _harness.ChildError as exc:
        return {"error": str(exc)}


def _overhead(pair: dict[str, Any]) -> float | None:
    """anyfan's extra CPU over the bare SDK: the median over pairs, robust to a noisy round."""
    if "median_ratio" not in pair:
        return None
    overhead: float = pair["median_ratio"] - 1
    return overhead


def _brief_pair(pair: dict[str, Any]) -> str:
    overhead = _overhead(pair)
    if overhead is None:
        return str(pair.get("error"))
    total = pair["anyfan_cpu"] / pair["bare_cpu"] - 1
    return (
        f"anyfan {overhead:+.1%} CPU over bare (median pair, "
        f"{pair['min_ratio'] - 1:+.1%} to {pair['max_ratio'] - 1:+.1%}; "
        f"{total:+.1%} over all rounds; the engine alone "
        f"{pair['engine_median_ratio'] - 1:+.1%})"
    )


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


def _best(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    good = [r for r in runs if "seconds" in r and not r.get("errors")]
    return min(good, key=lambda r: r["cpu"]) if good else None


def _render(
    results: dict[str, list[dict[str, Any]]],
    pairs: dict[str, dict[str, Any]],
    costs: dict[str, Any],
    limited: dict[str, Any],
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
) -> str:
    ideal = -(-n // concurrency) * latency_ms / 1000
    rows = []
    notes: list[str] = []
    best: dict[str, dict[str, Any] | None] = {}
    for row in ROWS:
        runs = results[row.key]
        best[row.key] = chosen = _best(runs)
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
                f"{chosen['cpu'] / n * 1e6:,.0f}",
                f"{chosen['seconds']:.2f}",
                f"{chosen['seconds'] / ideal:.2f}x",
                f"{counters['cpu_share'] * 100:.0f}%",
            )
        )
    throughput = _harness.table(
        ("client", "req/s", "client CPU µs/req", "wall s", "wall / ideal", "simulator CPU"),
        rows,
    )

    limited_rows = [_limited_row("**anyfan.openai.fan(rpm=…)**", limited, rpm, rpm_n)]
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
        extra = _overhead(pair)
        if extra is None:
            pair_rows.append((label, f"error: {pair.get('error')}", "", "", ""))
            continue
        requests = pair["requests"]
        pair_rows.append(
            (
                label,
                f"{pair['bare_cpu'] / requests * 1e6:,.0f}",
                f"{pair['anyfan_cpu'] / requests * 1e6:,.0f}",
                f"{pair['anyfan_cpu'] / pair['bare_cpu'] - 1:+.1%}",
                f"{extra:+.1%}",
                f"{pair['min_ratio'] - 1:+.1%} to {pair['max_ratio'] - 1:+.1%}",
                f"{pair['engine_median_ratio'] - 1:+.1%}",
            )
        )
    paired_table = _harness.table(
        (
            "transport",
            "bare SDK CPU µs/req",
            "anyfan CPU µs/req",
            "anyfan over bare, all rounds",
            "anyfan over bare, median pair",
            "min to max pair",
            "of which the engine alone (`anyfan.Fan`), median pair",
        ),
        pair_rows,
    )
    aio = pairs["aiohttp"]
    bare_us = aio["bare_cpu"] / aio["requests"] * 1e6 if "bare_cpu" in aio else None
    parts_table = _parts_table(costs, bare_us)
    rpm_ok = None
    rpm_text = limited.get("error", "not measured")
    if "seconds" in limited:
        achieved = rpm_n / limited["seconds"] * 60
        share = achieved / rpm
        limit_429 = limited["counters"]["rate_limited"]
        rpm_ok = limit_429 == 0 and share >= MIN_RPM_SHARE and not limited.get("errors", 0)
        rpm_text = f"{limit_429} 429s at {share:.1%} of {rpm:,} RPM"
    targets = []
    for transport, label in (("httpx", "default transport"), ("aiohttp", "DefaultAioHttpClient")):
        pair = pairs[transport]
        overhead = _overhead(pair)
        measured = "not measured"
        if overhead is not None:
            measured = (
                f"{overhead:+.1%} (median pair; "
                f"{pair['min_ratio'] - 1:+.1%} to {pair['max_ratio'] - 1:+.1%})"
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
        f"throughput cases ran {repeats} time(s), interleaved; each shows its run with the "
        f"least CPU. anyfan's rows set `rpm` and `tpm` far above what is reached, so the "
        f"limiter, token estimates, header calibration and retry bookkeeping all run without "
        f"ever holding a call back. Separate runs minutes apart differ by more than the few "
        f"percent anyfan costs, so its overhead is measured paired: one process alternates "
        f"batches of the bare SDK and of anyfan, each with its own warm client and each from a "
        f"collected heap (a full collection, tens of ms with the SDK loaded, would otherwise "
        f"land on either side at random), and sums each side's CPU; the target reads the "
        f"median of the rounds' ratios. The RPM case sends "
        f"{rpm_n:,} requests with the same "
        f"{rpm:,} RPM limit on the simulator (enforced in 1-second slices) and on the client; "
        f"achieved RPM is requests / wall time."
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
        "anyfan's own cost, paired:",
        paired_table,
        "anyfan's own cost, part by part, around a no-op call (in one process; the share is "
        "of the bare SDK's CPU per request with `DefaultAioHttpClient`, the leaner transport):",
        parts_table,
        "Under an RPM limit:",
        limited_table,
    ]
    if notes:
        parts.append("\n".join(f"({i}) {note}" for i, note in enumerate(notes, 1)))
    parts.append(_harness.targets_table(targets, quick=quick))
    return "\n\n".join(parts)


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
