"""Measure the simulator's throughput and CPU (a script, not a test).

Raw aiohttp on uvloop keeps 200 cheap chat requests in flight against a
zero-latency simulator, first run as a process (``anyfan sim``) and then as a
thread of the client's own process, and beside them a bare ASGI app on the
same uvicorn stack as the floor. It prints requests per second, the client's
CPU per request and the server's, and the server's share of one core.

    python tests/sim/sim_throughput.py [REQUESTS]
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
import urllib.request

import aiohttp
import uvloop

from anyfan.sim import Counters, Simulator

BODY = json.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
        "max_tokens": 16,
    }
).encode()
HEADERS = {"Authorization": "Bearer sk-test", "Content-Type": "application/json"}
IN_FLIGHT = 200

BARE_APP = textwrap.dedent(
    """
    import sys, time, uvicorn
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await receive()
        if scope["path"] == "/cpu":
            body = str(time.process_time()).encode()
        else:
            body = b'{"object":"chat.completion","choices":[]}'
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})
    print("ready", flush=True)
    uvicorn.run(app, port=int(sys.argv[1]), http="httptools", loop="uvloop", lifespan="off",
                log_level="warning", access_log=False)
    """
)


async def _load(url: str, total: int) -> tuple[float, float, int]:
    """Post ``total`` requests with IN_FLIGHT workers; return wall s, client CPU s, errors."""
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector) as session:
        numbers = iter(range(total))
        errors = 0

        async def worker() -> None:
            nonlocal errors
            for _ in numbers:
                async with session.post(url, data=BODY, headers=HEADERS) as response:
                    await response.read()
                    errors += response.status != 200

        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        return time.perf_counter() - wall, time.process_time() - cpu, errors


def _report(name: str, total: int, wall: float, cpu: float, errors: int, server_cpu: float) -> None:
    print(
        f"{name:<24} {total / wall:>8,.0f} req/s  client {cpu / total * 1e6:>4.0f} µs/req  "
        f"server {server_cpu / total * 1e6:>4.0f} µs/req  server share "
        f"{server_cpu / wall:>4.0%} of a core  errors {errors}"
    )


def _as_process(total: int) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "anyfan", "sim"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().split()[-1]
        root = base_url.removesuffix("/v1")
        uvloop.run(_load(base_url + "/chat/completions", 2_000))  # warm up
        urllib.request.urlopen(urllib.request.Request(root + "/sim/reset", method="POST")).read()
        wall, cpu, errors = uvloop.run(_load(base_url + "/chat/completions", total))
        with urllib.request.urlopen(root + "/sim/counters") as response:
            counters = Counters.from_dict(json.loads(response.read()))
        _report("anyfan sim (process)", total, wall, cpu, errors, counters.cpu_seconds)
    finally:
        process.terminate()
        process.wait()


def _as_thread(total: int) -> None:
    with Simulator() as sim:
        uvloop.run(_load(sim.base_url + "/chat/completions", 2_000))
        sim.reset()
        wall, cpu, errors = uvloop.run(_load(sim.base_url + "/chat/completions", total))
        server = sim.counters().cpu_seconds
    # The server thread's CPU is part of the process's: report the client's own.
    _report("Simulator (thread)", total, wall, cpu - server, errors, server)


def _bare(total: int, port: int = 18765) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", BARE_APP, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/cpu").read()
                break
            except OSError:
                time.sleep(0.05)
        uvloop.run(_load(url + "/x", 2_000))
        before = float(urllib.request.urlopen(url + "/cpu").read())
        wall, cpu, errors = uvloop.run(_load(url + "/x", total))
        after = float(urllib.request.urlopen(url + "/cpu").read())
        _report("bare ASGI app (floor)", total, wall, cpu, errors, after - before)
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 30_000
    _bare(requests)
    _as_process(requests)
    _as_thread(requests)
