"""Fixtures of the ``anyfan run`` tests: a simulator, request files, and running the command."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from anyfan import cli
from anyfan.sim import Faults, Latency, Limits, Simulator

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: A key no one would type by chance: tests grep every output for it.
SECRET = "sk-test-DO-NOT-LEAK-8c1f2e7a9b"


@pytest.fixture(scope="module")
def sim_server() -> Iterator[Simulator]:
    """One simulator for the module (skipped without the ``sim`` extra)."""
    pytest.importorskip("uvicorn")
    pytest.importorskip("httptools")
    with Simulator(seed=11) as simulator:
        yield simulator


@pytest.fixture
def sim(sim_server: Simulator) -> Simulator:
    """The module's simulator with default settings and zeroed counters."""
    sim_server.configure(limits=Limits(), faults=Faults(), latency=Latency())
    sim_server.reset()
    return sim_server


def chat(n: int, **extra: Any) -> dict[str, Any]:
    """A small chat request body, distinct for each ``n``."""
    return {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"Question number {n}?"}],
        "max_tokens": 20,
        **extra,
    }


def batch_line(custom_id: str, body: dict[str, Any], url: str = "/v1/chat/completions") -> str:
    """One request in the OpenAI Batch API shape."""
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


def write_requests(path: Path, lines: list[str]) -> Path:
    """Write ``lines`` as a JSONL file."""
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def plain_requests(path: Path, count: int) -> Path:
    """``count`` requests, alternately Batch-shaped and bare bodies."""
    lines = [batch_line(f"q{n}", chat(n)) if n % 2 else json.dumps(chat(n)) for n in range(count)]
    return write_requests(path, lines)


def read_results(path: Path) -> list[dict[str, Any]]:
    """The result lines, decoded (every line must be whole JSON)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@dataclass
class Ran:
    """What one in-process ``anyfan run`` did."""

    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Run ``anyfan run ARGS`` in this process, with the test key set; return a `Ran`."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)

    def run(*args: object) -> Ran:
        capsys.readouterr()
        code = cli.main(["run", *(str(a) for a in args)])
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run
