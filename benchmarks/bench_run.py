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
  plain asyncio, asyncio + uvloop (the CLI's default where installed) and
  trio, against an instant simulator and against a minimal raw server
  (``_rawserver.py``, a canned answer). Cases run interleaved, round after
  round; each figure is the median of the rounds with its min and max, and
  targets are judged on the median. Each server's share of a core is measured
  (psutil) to show when it, not the client, set the pace. The loop each run
  really used is read from the CLI's own banner.
- the HTTP client alone, no engine, on each loop, next to a hand-written
  client on the same loop (the loop's floor: raw sockets or protocols, the
  same request bytes, framing by ``Content-Length`` only), so the tables say
  how much of trio's gap is trio's own.

``--run-skip-paced`` measures the peak and the client alone only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import signal
import socket
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
    from collections.abc import Awaitable, Callable

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
    group.add_argument(
        "--run-skip-paced",
        action="store_true",
        help="measure only the peak and the client alone (the paced run takes a minute)",
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
    loop: str = ""  # the event loop the CLI said it ran on


#: ``python -c`` running the CLI with uvloop out of reach: plain asyncio, which
#: the CLI offers no switch for (it takes uvloop wherever installed).
WITHOUT_UVLOOP = (
    "import sys; sys.modules['uvloop'] = None; from anyfan.cli import main; sys.exit(main())"
)
#: The loops a case can run on -> what the CLI's banner calls it.
LOOP_NAMES = {"asyncio": "asyncio", "uvloop": "asyncio + uvloop", "trio": "trio"}


def has_uvloop() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def banner_loop(stderr: str) -> str:
    """The event loop named in ``anyfan run``'s banner ("... on LOOP, concurrency ...")."""
    for line in stderr.splitlines():
        if line.startswith("anyfan run: ") and ", concurrency " in line:
            return line.split(", concurrency ")[0].rsplit(" on ", 1)[-1]
    return "?"


def run_anyfan(
    src: Path,
    work: Path,
    sim_options: tuple[str, ...],
    args: list[str],
    timeout: float,
    *,
    raw: bool = False,
    loop: str = "",
) -> Ran:
    """One ``anyfan run``; ``loop`` "asyncio" (no uvloop), "uvloop" or "trio" adds ``--backend``."""
    sim = Sim(*sim_options, raw=raw)
    out = work / "results.jsonl"
    for stale in (out, work / "results.jsonl.anyfan.json"):
        stale.unlink(missing_ok=True)
    head = (
        [sys.executable, "-c", WITHOUT_UVLOOP]
        if loop == "asyncio"
        else [sys.executable, "-m", "anyfan"]
    )
    if loop:
        args = [*args, "--backend", "trio" if loop == "trio" else "asyncio"]
    command = [*head, "run", str(src), "-o", str(out)]
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
    ran_on = banner_loop(done.stderr)
    if loop and ran_on != LOOP_NAMES[loop]:
        note = f"ran on {ran_on}, not {LOOP_NAMES[loop]}"
    return Ran(
        "anyfan run", wall, cpu, len(lines), ok, counters, sustained, note, server_share, ran_on
    )


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


ALONE_BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})


def client_alone(spec: dict[str, Any]) -> dict[str, Any]:
    """In a child: post ``n`` requests from 100 tasks, no engine, on ``spec["backend"]``.

    ``spec["kind"]`` is ``"builtin"`` (anyfan's client) or ``"floor"`` (a
    hand-written client of the same requests: the event loop's own cost).
    """
    url, n = spec["url"] + "/chat/completions", spec["n"]
    main = _builtin(url, n) if spec["kind"] == "builtin" else _floor(spec["backend"], url, n)

    async def timed() -> dict[str, Any]:
        cpu, started = time.process_time(), time.perf_counter()
        await main()
        wall = time.perf_counter() - started
        return {"rate": n / wall, "cpu_us": 1e6 * (time.process_time() - cpu) / n}

    return _harness.run_on(spec["backend"], timed)


def _builtin(url: str, n: int) -> Callable[[], Awaitable[None]]:
    import anyio

    from anyfan.transport import open_transport

    async def main() -> None:
        async with open_transport({"Authorization": f"Bearer {KEY}"}, 100, timeout=60) as http:
            todo = iter(range(n))

            async def worker() -> None:
                for _ in todo:
                    await http.post(url, ALONE_BODY.encode())

            async with anyio.create_task_group() as tg:
                for _ in range(PEAK_CONCURRENCY):
                    tg.start_soon(worker)

    return main


def _request_bytes(url: str) -> tuple[str, int, bytes]:
    """Host, port and the bytes the built-in client sends for one request to ``url``."""
    from urllib.parse import urlsplit

    from anyfan import __version__

    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    body = ALONE_BODY.encode()
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
        f"User-Agent: anyfan/{__version__}\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return parts.hostname, parts.port, head.encode() + body


def _whole(data: bytes) -> bool:
    """Whether ``data`` holds a whole response of the raw server (framed by content-length)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    at = data.find(b"content-length: ", 0, end) + 16
    return len(data) >= end + 4 + int(data[at : data.find(b"\r\n", at)])


def _floor(backend: str, url: str, n: int) -> Callable[[], Awaitable[None]]:
    """A hand-written keep-alive client: 100 tasks, one connection each, no timeouts."""
    host, port, request = _request_bytes(url)
    todo = iter(range(n))
    if backend == "trio":
        import trio

        async def trio_worker() -> None:
            sock = socket.socket()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            try:
                sock.connect((host, port))
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)
            with sock:
                for _ in todo:
                    sock.send(request)  # small: the socket's buffer takes it whole
                    data = b""
                    while not _whole(data):
                        await trio.lowlevel.wait_readable(sock)
                        data += sock.recv(65536)

        async def trio_main() -> None:
            async with trio.open_nursery() as nursery:
                for _ in range(PEAK_CONCURRENCY):
                    nursery.start_soon(trio_worker)

        return trio_main

    import asyncio

    class Reader(asyncio.Protocol):
        def __init__(self) -> None:
            self.data = b""
            self.waiter: asyncio.Future[None] | None = None

        def data_received(self, data: bytes) -> None:
            self.data += data
            if _whole(self.data) and self.waiter is not None:
                self.data = b""
                self.waiter.set_result(None)

    async def asyncio_worker() -> None:
        loop = asyncio.get_running_loop()
        transport, reader = await loop.create_connection(Reader, host, port)  # TCP_NODELAY on
        for _ in todo:
            reader.waiter = loop.create_future()
            transport.write(request)
            await reader.waiter
        transport.close()

    async def asyncio_main() -> None:
        await asyncio.gather(*(asyncio_worker() for _ in range(PEAK_CONCURRENCY)))

    return asyncio_main


#: The client-alone cases: name -> (backend, kind).
def alone_cases() -> dict[str, tuple[str, str]]:
    loops = ["asyncio", "uvloop", "trio"] if has_uvloop() else ["asyncio", "trio"]
    return {
        f"{label} on {LOOP_NAMES[backend]}": (backend, kind)
        for backend in loops
        for kind, label in (
            ("floor", "hand-written client (the floor)"),
            ("builtin", "built-in client"),
        )
    }


def measure_client_alone(n: int, repeats: int) -> dict[str, list[dict[str, Any]]]:
    """The built-in client and the hand-written floor against the raw server, interleaved."""
    server = Sim(raw=True)

    def case(backend: str, kind: str) -> dict[str, Any]:
        cpu = server.cpu()
        result = _harness.run_child(
            __file__,
            {"url": server.base_url, "n": n, "backend": backend, "kind": kind},
            timeout=300,
        )
        result["server_share"] = (server.cpu() - cpu) / (n / result["rate"])
        return result

    try:
        return _harness.interleaved(
            {
                name: (lambda backend=backend, kind=kind: case(backend, kind))
                for name, (backend, kind) in alone_cases().items()
            },
            repeats,
        )
    finally:
        server.stop()


# -- the section ---------------------------------------------------------------------


def peak_cases() -> dict[str, tuple[str, bool]]:
    """Peak cases: name -> (loop, against the raw server rather than the simulator).

    The simulator cases run on the CLI's default asyncio loop (uvloop where
    installed); against the raw server, plain asyncio and uvloop both run.
    """
    default = "uvloop" if has_uvloop() else "asyncio"
    cases = {
        f"{LOOP_NAMES[default]}, simulator": (default, False),
        "trio, simulator": ("trio", False),
        "asyncio, raw server": ("asyncio", True),
    }
    if has_uvloop():
        cases["asyncio + uvloop, raw server"] = ("uvloop", True)
    cases["trio, raw server"] = ("trio", True)
    return cases


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
        paced: list[Ran] = []
        cookbook = getattr(opts, "cookbook", None)
        if getattr(opts, "run_skip_paced", False):
            cookbook = None
        else:
            _harness.progress(f"  run: paced, {n:,} requests, ideal {ideal:.1f} s")
            paced_args = ["--rpm", str(rpm), "--tpm", str(tpm)]
            paced_args += ["--concurrency", str(PACED_CONCURRENCY)]
            paced.append(run_anyfan(src, work, paced_sim, paced_args, limit_time))
        if cookbook:
            _harness.progress("  run: paced, the cookbook script")
            paced.append(run_cookbook(Path(cookbook), src, work, paced_sim, rpm, tpm, limit_time))
        cases = peak_cases()
        _harness.progress(f"  run: peak, {len(cases)} cases interleaved, {repeats} rounds")
        peaks = _harness.interleaved(
            {
                name: (
                    lambda loop=loop, raw=raw: run_anyfan(
                        src,
                        work,
                        (),
                        ["--concurrency", str(PEAK_CONCURRENCY)],
                        600,
                        raw=raw,
                        loop=loop,
                    )
                )
                for name, (loop, raw) in cases.items()
            },
            repeats,
        )
        _harness.progress("  run: start-up alone (an empty file), to subtract from the peak's CPU")
        empty = work / "empty.jsonl"
        empty.write_text("", encoding="utf-8")
        startup = _harness.interleaved(
            {
                loop: (lambda loop=loop: run_anyfan(empty, work, (), [], 120, raw=True, loop=loop))
                for loop, raw in cases.values()
                if raw
            },
            repeats,
        )
        _harness.progress("  run: the HTTP client alone, no engine")
        alone = measure_client_alone(n, repeats)
    return render(n, rpm, tpm, tokens, ideal, paced, cookbook, peaks, quick, alone, startup)


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
    startup: dict[str, list[Ran]] | None = None,
) -> str:
    summarise = _harness.summarise
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
    if paced and not cookbook:
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

    def sustained(runs: list[Ran]) -> _harness.Summary:
        return summarise(r.sustained or 0.0 for r in runs)

    peak_rows = []
    for name, runs in peaks.items():
        # Over the sustained phase (the server idles while the client starts Python).
        share = summarise(
            r.server_share * r.wall * (r.sustained or 0.0) / max(r.ok, 1) for r in runs
        )
        bound = share.median >= SERVER_BOUND
        loops = sorted({r.loop for r in runs})
        notes = sorted({r.note for r in runs if r.note})
        peak_rows.append(
            (
                name,
                " / ".join(loops),
                sustained(runs).show(),
                summarise(n / r.wall for r in runs).show(),
                summarise(1e6 * r.cpu / n for r in runs).show(),
                share.map(lambda x: 100 * x).show(".0f", "%"),
                "**the server**" if bound else "the client",
                f"{min(r.ok for r in runs):,} / {n:,}" + "".join(f" ({x})" for x in notes),
            )
        )
    peak_table = _harness.table(
        (
            "case",
            "loop (the CLI's banner)",
            "req/s sustained",
            "req/s end to end",
            "client CPU µs/request",
            "server share of a core",
            "bottleneck",
            "answered 200 (worst round)",
        ),
        peak_rows,
        "llrrrrrr",
    )

    def ratio(over: str, under: str) -> _harness.Summary:
        pairs = zip(peaks[over], peaks[under], strict=True)
        return summarise((a.sustained or 0.0) / max(t.sustained or 0.0, 1e-9) for a, t in pairs)

    sim_default = next(name for name in peaks if name.endswith(", simulator"))
    asyncio_sim = sustained(peaks[sim_default])
    ratio_raw = ratio("asyncio, raw server", "trio, raw server")
    ratio_sim = ratio(sim_default, "trio, simulator")
    measured = f"asyncio / trio = {ratio_raw.show('.2f')}x"
    if "asyncio + uvloop, raw server" in peaks:
        uv = ratio("asyncio + uvloop, raw server", "trio, raw server")
        measured += f"; asyncio + uvloop / trio = {uv.show('.2f')}x"
    measured += f" (against the simulator, {sim_default.split(',')[0]} / trio: "
    measured += f"{ratio_sim.show('.2f')}x)"

    alone = alone or {}
    alone_rows = [
        (
            name,
            summarise(r["rate"] for r in runs).show(),
            summarise(r["cpu_us"] for r in runs).show(".1f"),
            summarise(100 * r["server_share"] for r in runs).show(".0f", "%"),
        )
        for name, runs in alone.items()
    ]
    alone_table = _harness.table(
        ("case", "req/s", "client CPU µs/request", "server share of a core"), alone_rows
    )
    parts = _where_the_time_goes(n, peaks, alone, startup or {})
    targets = []
    if paced:
        anyfan_paced = paced[0]
        targets += [
            Target(
                f"paced: wall time within {100 * MAX_OVER_IDEAL:.0f}% of the ideal the limits "
                "allow",
                f"{anyfan_paced.wall:.1f} s against {ideal:.1f} s",
                anyfan_paced.wall <= (1 + MAX_OVER_IDEAL) * ideal,
            ),
            Target(
                "paced: every request answered, no 429",
                f"{anyfan_paced.ok:,} / {n:,} answered, {anyfan_paced.sim['rate_limited']:,} x 429",
                anyfan_paced.ok == n and anyfan_paced.sim["rate_limited"] == 0,
            ),
        ]
    else:
        targets += [
            Target("paced: wall time and 429s", "skipped (--run-skip-paced)", None),
        ]
    targets += [
        Target(
            f"peak: at least {PEAK_TARGET:,} req/s sustained on asyncio "
            f"({sim_default.split(',')[0]}, the CLI's default; median)",
            f"{asyncio_sim.show()} req/s",
            asyncio_sim.median >= PEAK_TARGET and all(r.ok == n for r in peaks[sim_default]),
        ),
        Target(
            f"peak: trio within {TRIO_WITHIN}x of asyncio's req/s against the raw server "
            "(plain asyncio; median of paired ratios)",
            measured,
            ratio_raw.median <= TRIO_WITHIN,
        ),
    ]
    per_request = tokens / n
    rounds = len(next(iter(peaks.values())))
    blocks = [
        f"## {TITLE}",
        f"`anyfan run` answers a file of {count(n)} chat requests (bare bodies, `max_tokens` "
        f"10 to 49, about {per_request:.0f} tokens charged each) from a simulator in a "
        "separate process on this machine; each case starts both processes afresh. "
        f"**Paced**: the simulator enforces {rpm:,} RPM and {tpm:,} TPM the provider's way "
        "(per minute, in 1-second slices) and answers after 100 ms plus 2 ms per token "
        f"(±30%); the client is given the same limits and concurrency {PACED_CONCURRENCY}. "
        "The ideal is the least time the limits allow. "
        f"**Peak**: no limits, concurrency {PEAK_CONCURRENCY}, on plain asyncio, on asyncio + "
        "uvloop (what `--backend asyncio` picks where uvloop is installed) and on trio, "
        "against the instant simulator and against a minimal raw server "
        "(`benchmarks/_rawserver.py`: uvloop protocols, one canned chat completion, no "
        "parsing beyond framing), so that the client's own ceiling shows where the "
        "simulator is the bottleneck. Plain asyncio runs the CLI with uvloop hidden from "
        "it; the loop column is what the CLI's banner said it ran on. The cases run "
        f"interleaved, {rounds} rounds; each figure is the median with "
        "(min-max), and targets are judged on the median, never the best round. A server "
        f"using {100 * SERVER_BOUND:.0f}% of a core or more (psutil: its CPU over the "
        "client's run, divided by the sustained phase's duration) "
        "is marked as the bottleneck: that row measures the server. "
        "*Sustained* is the client's own rate between its first request "
        "and its last result; *end to end* includes starting Python. Client CPU is the "
        "process's user + system time, start-up included, divided by the requests; the "
        "simulator's is its server thread's. The client posts with its built-in HTTP client "
        "on every loop (asyncio's protocols on asyncio, non-blocking sockets through anyio "
        "on trio).",
    ]
    if paced:
        blocks += [
            f"**Paced**: {count(n)} requests at {rpm:,} RPM / {tpm:,} TPM (ideal {ideal:.1f} s)",
            paced_table,
        ]
    blocks += [
        f"**Peak**: {count(n)} requests, no limits",
        peak_table,
        f"**The HTTP client alone**: {count(n)} posts from {PEAK_CONCURRENCY} tasks, no "
        "engine and no file, against the raw server, interleaved rounds, median (min-max). "
        "The built-in client (with its 60 s deadline per request) next to a hand-written "
        "client on the same loop: the same request bytes on one keep-alive connection per "
        "task, framing by `Content-Length` alone, no deadline, no pool, no parsing "
        "(protocols on asyncio; on trio non-blocking sockets and `trio.lowlevel.wait_readable`, "
        "the least trio offers). That floor is what the event loop itself costs.",
        alone_table,
    ]
    if parts:
        blocks += [
            "**Where a request's CPU goes** at peak against the raw server, µs per request "
            "(medians): the loop's floor and the built-in client from the table above; "
            "`anyfan run` is its client CPU in the peak table less its start-up (the CPU of "
            "`anyfan run` on an empty file, measured on each loop in the same rounds). Each "
            "row but the first and last is the cost added over the row above. At these rates "
            "the kernel's share of a request (loopback TCP is charged to the sender) depends "
            "on how requests and wake-ups batch, so a difference of a few µs is noise; a "
            "negative row means the two were that close.",
            parts,
        ]
    blocks.append(_harness.targets_table(targets, quick=quick))
    return "\n\n".join(blocks)


def _where_the_time_goes(
    n: int,
    peaks: dict[str, list[Ran]],
    alone: dict[str, list[dict[str, Any]]],
    startup: dict[str, list[Ran]],
) -> str:
    """The per-loop breakdown: floor, client over the floor, engine and job over the client."""
    median = _harness.summarise
    columns: dict[str, tuple[float, float, float]] = {}
    for loop in ("asyncio", "uvloop", "trio"):
        name = LOOP_NAMES[loop]
        floor = alone.get(f"hand-written client (the floor) on {name}")
        ours = alone.get(f"built-in client on {name}")
        runs = peaks.get(f"{name}, raw server")
        if not floor or not ours or not runs or not startup.get(loop):
            continue
        start = median(r.cpu for r in startup[loop]).median
        columns[loop] = (
            median(r["cpu_us"] for r in floor).median,
            median(r["cpu_us"] for r in ours).median,
            median(1e6 * (r.cpu - start) / n for r in runs).median,
        )
    if "trio" not in columns or "asyncio" not in columns:
        return ""
    labels = (
        "the loop's floor: a hand-written client",
        "+ the built-in client over the floor (pool, parser, deadlines)",
        "+ the engine and the batch job over the client",
        "= `anyfan run` at peak, start-up excluded",
    )
    rows = []
    for i, label in enumerate(labels):
        cells = {loop: (f, c - f, r - c, r)[i] for loop, (f, c, r) in columns.items()}
        rows.append(
            (
                label,
                *(f"{x:.1f}" for x in cells.values()),
                f"{cells['trio'] - cells['asyncio']:+.1f}",
                f"{cells['trio'] / cells['asyncio']:.2f}x" if cells["asyncio"] > 0 else "-",
            )
        )
    headers = (
        "µs per request",
        *(LOOP_NAMES[x] for x in columns),
        "trio - asyncio",
        "trio / asyncio",
    )
    return _harness.table(headers, rows)


if __name__ == "__main__" and "--child" in sys.argv:
    _harness.child_main(client_alone)
