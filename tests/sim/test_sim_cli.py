"""``anyfan sim``: the simulator as a foreground process."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from anyfan.cli import _sim as cli
from anyfan.sim import Fault, Simulator

pytest.importorskip("uvicorn")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_options_build_the_simulator() -> None:
    sim = cli.build_simulator(
        _args(
            "--rpm", "60", "--tpm", "1000", "--ttft-ms", "5", "--itl-ms", "1",
            "--per-prompt-token-ms", "0.5", "--jitter", "0.1", "--fault-500", "0.1",
            "--fault-503", "0.05", "--fault-reset", "0.01", "--fault-hang", "0.02",
            "--fault-slow", "0.03", "--fault-cut", "0.04", "--fault-quota", "0.001",
            "--slow-first-byte-ms", "50", "--seed", "9", "--reply-tokens", "2", "3",
        )
    )  # fmt: skip
    assert (sim.limits.rpm, sim.limits.tpm) == (60, 1000)
    assert sim.latency.ttft_ms == 5
    assert sim.latency.per_prompt_token_ms == 0.5
    assert sim.faults.probability(Fault.INSUFFICIENT_QUOTA) == 0.001
    assert sim.faults.probability(Fault.STREAM_CUT) == 0.04
    assert sim.faults.slow_first_byte_ms == 50


def test_serve_until_signalled(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[int] = []

    def on_ready(sim: Simulator) -> None:
        request = urllib.request.Request(
            sim.base_url + "/models", headers={"Authorization": "Bearer k"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            seen.append(response.status)
        signal.raise_signal(signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    assert cli.serve(_args("--rpm", "100"), on_ready) == 0
    assert signal.getsignal(signal.SIGTERM) is before
    assert seen == [200]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("anyfan sim: serving http://127.0.0.1:")
    assert lines[0].endswith("/v1")
    assert json.loads(lines[-1])["responses"] == {"200": 1}


def test_bad_options_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.serve(_args("--rpm", "0")) == 2
    assert "anyfan sim: error: rpm must be at least 1" in capsys.readouterr().err


def test_taken_port_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.serve(_args("--port", str(port))) == 1
    assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err


def test_main_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[argparse.Namespace] = []
    monkeypatch.setattr(cli, "serve", lambda args: calls.append(args) or 7)
    args = _args()
    assert cli.main(args) == 7
    assert calls == [args]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_as_a_real_process() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "anyfan", "sim", "--port", "0", "--tpm", "5000"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("anyfan sim: serving ")
        base_url = first.split()[-1]
        root = base_url.removesuffix("/v1")
        with urllib.request.urlopen(root + "/sim/config", timeout=10) as response:
            assert json.loads(response.read())["limits"] == {"rpm": None, "tpm": 5000}
        process.send_signal(signal.SIGTERM)
        rest = process.stdout.read()
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:  # pragma: no cover - only when an assertion failed
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    assert json.loads(rest.splitlines()[-1])["requests"] == 0
