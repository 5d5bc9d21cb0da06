"""Section ``run`` (issue 5/5): ``anyfan run`` over a file of requests against the simulator.

Every case runs the simulator (``anyfan sim``) and the client as two separate
processes on this machine, each started afresh. Two measurements:

- paced: a 20,000-request file under RPM and TPM limits that the simulator
  enforces the provider's way (per minute, in 1-second slices), the client
  told the same limits. Wall time is set against the least time the limits
  allow; the client's CPU and the 429s it drew are counted. Given
  ``--cookbook PATH`` (a local copy of the OpenAI cookbook's
  ``api_request_parallel_processor.py``, never shipped), the same file and
  limits go through it too.
- peak: the same file with no limits, for the most requests per second, on
  asyncio and on trio, against an instant simulator and against a minimal raw
  server (``_rawserver.py``, a canned answer). Cases run interleaved, round
  after round; each figure is the median of the rounds with its min and max,
  and targets are judged on the median. Each server's share of a core is
  measured (psutil) to show when it, not the client, set the pace.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness
from _harness import Target, count

if TYPE_CHECKING:
    import argparse

TITLE = "anyfan run: a batch job against the simulator"
ORDER = 60

REQUESTS = 20_000
QUICK_REQUESTS = 1_000
RPM = 30_000
TPM = 1_500_000
PACED_LATENCY = ("--ttft-ms", "100", "--itl-ms", "2", "--jitter", "0.3")
PACED_CONCURRENCY = 200
PEAK_CONCURRENCY = 100
PEAK_TARGET = 5_000  # requests per second, sustained, on asyncio
TRIO_WITHIN = 1.5  # trio's req/s at least asyncio's divided by this (median of paired ratios)
#: A server above this share of a core is the bottleneck of its run.
SERVER_BOUND = 0.8
RAW_SERVER = Path(__file__).resolve().parent / "_rawserver.py"
MAX_OVER_IDEAL = 0.05
KEY = "sk-bench-not-a-secret"


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--run-requests",
        type=int,
        help=f"requests in the file (default {REQUESTS:,}; --quick {QUICK_REQUESTS:,})",
    )
    group.add_argument("--run-rpm", type=int, help=f"RPM limit of the paced case (default {RPM:,})")
    group.add_argument("--run-tpm", type=int, help=f"TPM limit of the paced case (default {TPM:,})")
    group.add_argument(
        "--run-repeats",
        type=int,
        help="peak rounds; each figure is their median, with min and max (default 3; --quick 1)",
    )
    if "--cookbook" not in group._option_string_actions:  # the openai section shares it
        group.add_argument(
            "--cookbook",
            metavar="PATH",
            help="a local copy of the cookbook's api_request_parallel_processor.py to run side "
            "by side (never shipped with anyfan)",
        )


# -- the pieces ----------------------------------------------------------------------


def write_requests(path: Path, n: int) -> int:
    """Write ``n`` chat requests (bare bodies); return the tokens the limits charge for them."""
    from anyfan.openai import estimate_tokens

    tokens = 0
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            body = {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"Question {i}: say something short."}],
                "max_tokens": 10 + i % 40,
            }
            tokens += estimate_tokens(body)
            f.write(json.dumps(body) + "\n")
    return tokens


class Sim:
    """``anyfan sim`` (or, with ``raw=True``, the minimal raw server) in its own process."""

    def __init__(self, *options: str, raw: bool = False) -> None:
        command = [sys.executable, str(RAW_SERVER)] if raw else [sys.executable, "-m", "anyfan"]
        if not raw:
            command += ["sim", *options]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if not first.startswith(("anyfan sim: serving ", "raw server: serving ")):
            self.proc.kill()
            raise RuntimeError(f"the server did not start: {first!r}")
        self.base_url = first.split()[-1]

    def cpu(self) -> float:
        """The server's CPU seconds so far."""
        return _harness.cpu_seconds(self.proc.pid)

    def stop(self) -> dict[str, Any]:
        """Stop it; return its counters."""
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=60)
        return dict(json.loads(out.strip().splitlines()[-1]))


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Ran:
    """One client run."""

    client: str
    wall: float
    cpu: float
    answered: int
    ok: int
    sim: dict[str, Any]
    sustained: float | None = None  # requests per second between the first and last result
    note: str = ""
    server_share: float = 0.0  # the server's CPU over the run, in cores


def run_anyfan(
    src: Path,
    work: Path,
    sim_options: tuple[str, ...],
    args: list[str],
    timeout: float,
    *,
    raw: bool = False,
) -> Ran:
    sim = Sim(*sim_options, raw=raw)
    out = work / "results.jsonl"
    for stale in (out, work / "results.jsonl.anyfan.json"):
        stale.unlink(missing_ok=True)
    command = [sys.executable, "-m", "anyfan", "run", str(src), "-o", str(out)]
    command += ["--base-url", sim.base_url, "--progress", "off", *args]
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    server_cpu = sim.cpu()
    cpu, started = children_cpu(), time.perf_counter()
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    finally:
        wall, cpu = time.perf_counter() - started, children_cpu() - cpu
        server_share = (sim.cpu() - server_cpu) / wall
        counters = sim.stop()
    lines = out.read_text(encoding="utf-8").splitlines() if out.exists() else []
    ok = sum('"response":{"status_code":200,' in line for line in lines)
    sustained = None
    for line in done.stdout.splitlines():
        if " RPM" in line:
            sustained = float(line.split(" RPM")[0].split()[-1].replace(",", "")) / 60
    note = "" if done.returncode == 0 else f"exit {done.returncode}"
    return Ran("anyfan run", wall, cpu, len(lines), ok, counters, sustained, note, server_share)


def run_cookbook(
    script: Path,
    src: Path,
    work: Path,
    sim_options: tuple[str, ...],
    rpm: int,
    tpm: int,
    timeout: float,
) -> Ran:
    out = work / "cookbook-results.jsonl"
    out.unlink(missing_ok=True)
    shims = work / "cookbook-shims"
    shims.mkdir(exist_ok=True)
    (shims / "runner.py").write_text(_harness.COOKBOOK_SHIM, encoding="utf-8")
    if not _harness.tiktoken_loads():
        (shims / "tiktoken.py").write_text(_harness.TIKTOKEN_STANDIN, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(shims)}
    sim = Sim(*sim_options)
    command = [sys.executable, str(shims / "runner.py"), str(script)]
    command += ["--requests_filepath", str(src)]
    command += ["--save_filepath", str(out), "--request_url", sim.base_url + "/chat/completions"]
    command += ["--api_key", KEY, "--max_requests_per_minute", str(rpm)]
    command += ["--max_tokens_per_minute", str(tpm), "--token_encoding_name", "cl100k_base"]
    command += ["--max_attempts", "5", "--logging_level", "40"]
    cpu, started = children_cpu(), time.perf_counter()
    note = ""
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            note = f"exit {done.returncode}: " + (done.stderr.strip().splitlines() or [""])[-1][:80]
    except subprocess.TimeoutExpired:
        note = f"stopped after {timeout:.0f} s"
    finally:
        wall, cpu = time.perf_counter() - started, children_cpu() - cpu
        counters = sim.stop()
    lines = out.read_text(encoding="utf-8").splitlines() if out.exists() else []
    ok = 0
    for line in lines:
        try:
            answer = json.loads(line)[1]
        except (ValueError, IndexError):
            continue
        ok += isinstance(answer, dict) and "choices" in answer
    return Ran("cookbook script", wall, cpu, len(lines), ok, counters, None, note)


def client_alone(spec: dict[str, Any]) -> dict[str, Any]:
    """In a child: post ``n`` requests from 100 tasks through the built-in client, no engine."""
    import anyio

    from anyfan.transport import open_transport

    url, n = spec["url"] + "/chat/completions", spec["n"]
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})

    async def main() -> dict[str, Any]:
        async with open_transport({"Authorization": f"Bearer {KEY}"}, 100, timeout=60) as http:
            todo = iter(range(n))

            async def worker() -> None:
                for _ in todo:
                    await http.post(url, body.encode())

            cpu, started = time.process_time(), time.perf_counter()
            async with anyio.create_task_group() as tg:
                for _ in range(PEAK_CONCURRENCY):
                    tg.start_soon(worker)
            wall = time.perf_counter() - started
            return {"rate": n / wall, "cpu_us": 1e6 * (time.process_time() - cpu) / n}

    return _harness.run_on(spec["backend"], main)


def measure_client_alone(n: int, repeats: int) -> dict[str, list[dict[str, Any]]]:
    """The built-in client alone against the raw server, per backend, interleaved."""
    server = Sim(raw=True)
    try:
        return _harness.interleaved(
            {
                backend: (
                    lambda backend=backend: _harness.run_child(
                        __file__, {"url": server.base_url, "n": n, "backend": backend}, timeout=300
                    )
                )
                for backend in ("uvloop", "trio")
            },
            repeats,
        )
    finally:
        server.stop()


# -- the section ---------------------------------------------------------------------

#: Peak cases: name -> (backend, against the raw server rather than the simulator).
PEAK_CASES: dict[str, tuple[str, bool]] = {
    "asyncio, simulator": ("asyncio", False),
    "trio, simulator": ("trio", False),
    "asyncio, raw server": ("asyncio", True),
    "trio, raw server": ("trio", True),
}


def run(opts: argparse.Namespace) -> str:
    quick = opts.quick
    n = opts.run_requests or (QUICK_REQUESTS if quick else REQUESTS)
    rpm = opts.run_rpm or (4 * RPM if quick else RPM)
    tpm = opts.run_tpm or (4 * TPM if quick else TPM)
    repeats = opts.run_repeats or (1 if quick else 3)
    with tempfile.TemporaryDirectory(prefix="anyfan-bench-run-") as tmp:
        work = Path(tmp)
        src = work / "requests.jsonl"
        tokens = write_requests(src, n)
        ideal = max(60 * n / rpm, 60 * tokens / tpm)
        limit_time = 10 * ideal + 120
        paced_sim = ("--rpm", str(rpm), "--tpm", str(tpm), *PACED_LATENCY)
        _harness.progress(f"  run: paced, {n:,} requests, ideal {ideal:.1f} s")
        paced = [
            run_anyfan(
                src,
                work,
                paced_sim,
                ["--rpm", str(rpm), "--tpm", str(tpm), "--concurrency", str(PACED_CONCURRENCY)],
                limit_time,
            )
        ]
        cookbook = getattr(opts, "cookbook", None)
        if cookbook:
            _harness.progress("  run: paced, the cookbook script")
            paced.append(run_cookbook(Path(cookbook), src, work, paced_sim, rpm, tpm, limit_time))
        _harness.progress(f"  run: peak, {len(PEAK_CASES)} cases interleaved, {repeats} rounds")
        peaks = _harness.interleaved(
            {
                name: (
                    lambda backend=backend, raw=raw: run_anyfan(
                        src,
                        work,
                        (),
                        ["--concurrency", str(PEAK_CONCURRENCY), "--backend", backend],
                        600,
                        raw=raw,
                    )
                )
                for name, (backend, raw) in PEAK_CASES.items()
            },
            repeats,
        )
        _harness.progress("  run: the HTTP client alone, no engine")
        alone = measure_client_alone(n, repeats)
    return render(n, rpm, tpm, tokens, ideal, paced, cookbook, peaks, quick, alone)


def render(
    n: int,
    rpm: int,
    tpm: int,
    tokens: int,
    ideal: float,
    paced: list[Ran],
    cookbook: str | None,
    peaks: dict[str, list[Ran]],
    quick: bool,
    alone: dict[str, list[dict[str, Any]]] | None = None,
) -> str:
    rows = []
    for r in paced:
        rows.append(
            (
                r.client,
                f"{r.wall:.1f} s",
                f"{r.wall / ideal:.2f}x",
                f"{r.sim['rate_limited']:,}",
                f"{r.ok:,} / {n:,}",
                f"{1e6 * r.cpu / n:.0f}",
                f"{r.sim['cpu_seconds']:.1f} s",
                r.note or "-",
            )
        )
    if not cookbook:
        rows.append(("cookbook script", "absent", "-", "-", "-", "-", "-", "give --cookbook PATH"))
    paced_table = _harness.table(
        (
            "client",
            "wall time",
            "vs ideal",
            "429s",
            "answered 200",
            "client CPU µs/request",
            "simulator CPU",
            "note",
        ),
        rows,
        "lrrrrrrl",
    )
    summarise = _harness.summarise

    def sustained(runs: list[Ran]) -> _harness.Summary:
        return summarise(r.sustained or 0.0 for r in runs)

    peak_rows = []
    for name, runs in peaks.items():
        # Over the sustained phase (the server idles while the client starts Python).
        share = summarise(
            r.server_share * r.wall * (r.sustained or 0.0) / max(r.ok, 1) for r in runs
        )
        bound = share.median >= SERVER_BOUND
        peak_rows.append(
            (
                name,
                sustained(runs).show(),
                summarise(n / r.wall for r in runs).show(),
                summarise(1e6 * r.cpu / n for r in runs).show(),
                share.map(lambda x: 100 * x).show(".0f", "%"),
                "**the server**" if bound else "the client",
                f"{min(r.ok for r in runs):,} / {n:,}",
            )
        )
    peak_table = _harness.table(
        (
            "case",
            "req/s sustained",
            "req/s end to end",
            "client CPU µs/request",
            "server share of a core",
            "bottleneck",
            "answered 200 (worst round)",
        ),
        peak_rows,
    )

    def trio_ratio(server: str) -> _harness.Summary:
        pairs = zip(peaks[f"asyncio, {server}"], peaks[f"trio, {server}"], strict=True)
        return summarise((a.sustained or 0.0) / max(t.sustained or 0.0, 1e-9) for a, t in pairs)

    alone_rows = [
        (
            f"built-in client on {backend}",
            summarise(r["rate"] for r in runs).show(),
            summarise(r["cpu_us"] for r in runs).show(".0f"),
        )
        for backend, runs in (alone or {}).items()
    ]
    alone_table = _harness.table(("case", "req/s", "client CPU µs/request"), alone_rows)
    asyncio_sim = sustained(peaks["asyncio, simulator"])
    ratio_raw, ratio_sim = trio_ratio("raw server"), trio_ratio("simulator")
    anyfan_paced = paced[0]
    targets = [
        Target(
            f"paced: wall time within {100 * MAX_OVER_IDEAL:.0f}% of the ideal the limits allow",
            f"{anyfan_paced.wall:.1f} s against {ideal:.1f} s",
            anyfan_paced.wall <= (1 + MAX_OVER_IDEAL) * ideal,
        ),
        Target(
            "paced: every request answered, no 429",
            f"{anyfan_paced.ok:,} / {n:,} answered, {anyfan_paced.sim['rate_limited']:,} x 429",
            anyfan_paced.ok == n and anyfan_paced.sim["rate_limited"] == 0,
        ),
        Target(
            f"peak: at least {PEAK_TARGET:,} req/s sustained on asyncio (median)",
            f"{asyncio_sim.show()} req/s",
            asyncio_sim.median >= PEAK_TARGET
            and all(r.ok == n for r in peaks["asyncio, simulator"]),
        ),
        Target(
            f"peak: trio within {TRIO_WITHIN}x of asyncio's req/s against the raw server "
            "(median of paired ratios)",
            f"asyncio / trio = {ratio_raw.show('.2f')}x "
            f"(against the simulator: {ratio_sim.show('.2f')}x)",
            ratio_raw.median <= TRIO_WITHIN,
        ),
    ]
    per_request = tokens / n
    return "\n\n".join(
        [
            f"## {TITLE}",
            f"`anyfan run` answers a file of {count(n)} chat requests (bare bodies, `max_tokens` "
            f"10 to 49, about {per_request:.0f} tokens charged each) from a simulator in a "
            "separate process on this machine; each case starts both processes afresh. "
            f"**Paced**: the simulator enforces {rpm:,} RPM and {tpm:,} TPM the provider's way "
            "(per minute, in 1-second slices) and answers after 100 ms plus 2 ms per token "
            f"(±30%); the client is given the same limits and concurrency {PACED_CONCURRENCY}. "
            "The ideal is the least time the limits allow. "
            f"**Peak**: no limits, concurrency {PEAK_CONCURRENCY}, on asyncio (+ uvloop) and "
            "on trio, against the instant simulator and against a minimal raw server "
            "(`benchmarks/_rawserver.py`: asyncio protocols, one canned chat completion, no "
            "parsing beyond framing), so that the client's own ceiling shows where the "
            "simulator is the bottleneck. The cases run interleaved, "
            f"{len(next(iter(peaks.values())))} rounds; each figure is the median with "
            "(min-max), and targets are judged on the median, never the best round. A server "
            f"using {100 * SERVER_BOUND:.0f}% of a core or more (psutil: its CPU over the "
            "client's run, divided by the sustained phase's duration) "
            "is marked as the bottleneck: that row measures the server. "
            "*Sustained* is the client's own rate between its first request "
            "and its last result; *end to end* includes starting Python. Client CPU is the "
            "process's user + system time, start-up included, divided by the requests; the "
            "simulator's is its server thread's. The client posts with its built-in HTTP client "
            "on both backends (asyncio's protocols on asyncio, anyio sockets on trio).",
            f"**Paced**: {count(n)} requests at {rpm:,} RPM / {tpm:,} TPM (ideal {ideal:.1f} s)",
            paced_table,
            f"**Peak**: {count(n)} requests, no limits",
            peak_table,
            f"**The HTTP client alone**: {count(n)} posts from {PEAK_CONCURRENCY} tasks "
            "straight through the built-in client (no engine, no file), against the raw "
            "server, interleaved rounds, median (min-max). What trio costs beyond asyncio "
            "here is the transport's share of the gap in the peak table; the rest is the "
            "engine's on trio (issue 13, part 1).",
            alone_table,
            _harness.targets_table(targets, quick=quick),
        ]
    )


if __name__ == "__main__" and "--child" in sys.argv:
    _harness.child_main(client_alone)
