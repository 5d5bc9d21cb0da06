"""Fixtures of the ``anyfan run`` tests: a simulator, and running the command in-process."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import pytest
from run_helpers import SECRET, Ran

from anyfan import cli
from anyfan.batch import _send as _sender
from anyfan.openai import openai_retry
from anyfan.sim import Faults, Latency, ServerLimits, Simulator

if TYPE_CHECKING:
    from collections.abc import Iterator


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
    sim_server.configure(limits=ServerLimits(), faults=Faults(), latency=Latency())
    sim_server.reset()
    return sim_server


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run ``anyfan run ARGS`` in this process, with the test key set; return a `Ran`.

    Backoff between retries is cut to milliseconds (server-directed waits are
    kept): the tests check what is retried, not how long it waits.
    """
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setattr(
        _sender, "openai_retry", functools.partial(openai_retry, backoff=0.002, max_backoff=0.01)
    )

    def run(*args: object) -> Ran:
        capsys.readouterr()
        code = cli.main(["run", *(str(a) for a in args)])
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run
