"""The trio how-to: many tasks, each calling through one Fan, against the simulator."""

from __future__ import annotations

import pytest
from framework_helpers import KEY, RPM, how_to

from anyfan.sim import Faults, Limits, Simulator

trio = pytest.importorskip("trio")


def test_many_tasks_share_one_quota_on_trio() -> None:
    questions = [f"question {i}" for i in range(120)]
    faults = Faults(server_error=0.05)
    with Simulator(seed=13, limits=Limits(rpm=RPM), faults=faults) as sim:
        answers = trio.run(
            lambda: how_to("trio_app").main(
                questions, base_url=sim.base_url, api_key=KEY, rpm=RPM, workers=60
            )
        )
        counters = sim.wait_until_idle()
    assert sorted(answers) == sorted(questions)
    assert all(answers.values())
    assert counters.rate_limited == 0
    assert counters.requests == 120 + counters.faults.get("500", 0)
    assert counters.faults.get("500", 0) > 0  # and were healed
