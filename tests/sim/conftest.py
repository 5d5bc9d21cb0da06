"""Fixtures of the simulator's tests: one server per module, reset before each test."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from anyfan.sim import Faults, Latency, ServerLimits, Simulator

# The user-facing fixtures and marker, as the pytest11 entry point would register them.
from anyfan.sim.pytest_plugin import (  # noqa: F401
    anyfan_sim,
    anyfan_sim_module,
    pytest_configure,
)

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="module")
def sim_server() -> Iterator[Simulator]:
    """One simulator for the whole module (skipped without the ``sim`` extra)."""
    pytest.importorskip("uvicorn")
    pytest.importorskip("httptools")
    with Simulator() as simulator:
        yield simulator


@pytest.fixture
def sim(sim_server: Simulator) -> Simulator:
    """The module's simulator with default settings and zeroed counters."""
    sim_server.configure(limits=ServerLimits(), faults=Faults(), latency=Latency())
    sim_server.reset()
    return sim_server
