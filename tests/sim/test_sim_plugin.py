"""The ``anyfan_sim`` pytest fixtures and marker, as users meet them."""

from __future__ import annotations

import json
import urllib.request

import pytest

from anyfan.sim import ServerLimits, Simulator

pytest.importorskip("uvicorn")


def _status(sim: Simulator) -> int:
    request = urllib.request.Request(
        sim.base_url + "/chat/completions",
        data=b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}',
        headers={"Authorization": "Bearer sk-test"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_fixture_yields_a_running_simulator(anyfan_sim: Simulator) -> None:
    assert anyfan_sim.running
    assert _status(anyfan_sim) == 200
    assert anyfan_sim.counters().requests == 1


@pytest.mark.anyfan_sim(limits=ServerLimits(rpm=1), seed=3)
def test_marker_configures_it(anyfan_sim: Simulator) -> None:
    assert [_status(anyfan_sim), _status(anyfan_sim)] == [200, 429]


_PORTS: list[int] = []


def test_module_fixture_is_shared(anyfan_sim_module: Simulator) -> None:
    anyfan_sim_module.reset()
    _PORTS.append(anyfan_sim_module.port)
    assert _status(anyfan_sim_module) == 200
    with urllib.request.urlopen(anyfan_sim_module.url + "/sim/counters", timeout=10) as reply:
        assert json.loads(reply.read())["requests"] == 1


def test_module_fixture_is_the_same_server(anyfan_sim_module: Simulator) -> None:
    assert [anyfan_sim_module.port] == _PORTS
    assert anyfan_sim_module.counters().requests == 1  # the previous test's request


def test_the_marker_is_declared(pytestconfig: pytest.Config) -> None:
    assert any(line.startswith("anyfan_sim(") for line in pytestconfig.getini("markers"))
