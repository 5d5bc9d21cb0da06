"""No 429 when the client's own CPU is the bottleneck (issue 13, part 3).

The client runs in a subprocess pinned to one core, beside a process that
keeps that core busy, and spends CPU on every reply; its limit matches the
server's exactly. The slice guard, kept as wide as the delays between
admission and sending that the client measures, must keep every request in
its slice: no 429, at 95% of the limit or more.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from anyfan.sim import Faults, Latency, ServerLimits, Simulator

pytest.importorskip("openai")
pytest.importorskip("uvicorn")

CLIENT = Path(__file__).with_name("saturated_client.py")
RPM = 3_000  # 50 a second, matched on both sides
REQUESTS = 150  # about 3 s at that pace
BURN_MS = 2  # CPU each reply costs the client, in its event loop

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)"
)


def _busy(cpu: int) -> subprocess.Popen[bytes]:
    """A process that keeps core ``cpu`` busy until killed."""
    code = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True:\n    pass\n"
    return subprocess.Popen([sys.executable, "-c", code])


def test_a_client_pinned_beside_a_busy_process_draws_no_429_at_matched_limits() -> None:
    cpu = max(os.sched_getaffinity(0))
    limits = ServerLimits(rpm=RPM)
    with Simulator(limits=limits, faults=Faults(), latency=Latency(ttft_ms=5), seed=1) as sim:
        arguments = [sim.base_url, RPM, REQUESTS, BURN_MS, cpu]
        busy = _busy(cpu)
        try:
            ran = subprocess.run(
                [sys.executable, str(CLIENT), *map(str, arguments)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        finally:
            busy.kill()
            busy.wait()
        counters = sim.wait_until_idle()
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert counters.rate_limited == 0
    assert counters.requests == REQUESTS
    assert result["pace"] >= 0.95 * RPM / 60
    assert result["guard"] > 0.005  # it did measure the delays, and widened
