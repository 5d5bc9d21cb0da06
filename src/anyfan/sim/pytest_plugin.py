"""pytest plugin: the ``anyfan_sim`` fixtures, registered when anyfan is installed.

``anyfan_sim`` starts a fresh `Simulator` for each test and stops it after;
``anyfan_sim_module`` shares one across a test module (call its ``reset()``
where tests must not see each other's traffic). Configure the per-test one
with a marker, whose keyword arguments go to `Simulator`::

    @pytest.mark.anyfan_sim(limits=ServerLimits(rpm=60), seed=7)
    async def test_my_client(anyfan_sim):
        client = openai.AsyncOpenAI(base_url=anyfan_sim.base_url, api_key="sk-test")

Importing this module needs only pytest; the fixtures need the ``sim`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ._server import Simulator

if TYPE_CHECKING:
    from collections.abc import Iterator


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``anyfan_sim`` marker, so that ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers",
        "anyfan_sim(**options): options for the anyfan_sim fixture's Simulator "
        "(limits=, faults=, latency=, seed=, ...)",
    )


@pytest.fixture
def anyfan_sim(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    """Yield a running `Simulator` for this test (see the ``anyfan_sim`` marker)."""
    marker = request.node.get_closest_marker("anyfan_sim")
    options = {} if marker is None else dict(marker.kwargs)
    with Simulator(**options) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def anyfan_sim_module() -> Iterator[Simulator]:
    """Yield one running `Simulator` shared by the tests of a module."""
    with Simulator() as simulator:
        yield simulator
