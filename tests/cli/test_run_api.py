"""`anyfan.batch.run` and `run_blocking`: the batch job from Python, as ``anyfan run`` runs it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from run_helpers import SECRET, plain_requests, read_results

import anyfan.batch
import anyfan.blocking

if TYPE_CHECKING:
    from pathlib import Path

    from anyfan.sim import Simulator

pytestmark = pytest.mark.anyio


async def test_run_answers_every_line_and_resumes(sim: Simulator, tmp_path: Path) -> None:
    source = plain_requests(tmp_path / "in.jsonl", 6)
    out = tmp_path / "out.jsonl"
    summary = await anyfan.batch.run(source, out, base_url=sim.url, api_key=SECRET, rpm=60_000)
    assert summary.exit_code == 0
    records = read_results(out)
    assert sorted(r["line"] for r in records) == list(range(1, 7))
    assert all(r["response"]["status_code"] == 200 for r in records)
    assert SECRET not in out.read_text()
    sent = sim.counters().requests
    again = await anyfan.batch.run(source, out, base_url=sim.url, api_key=SECRET, rpm=60_000)
    assert again.exit_code == 0
    assert sim.counters().requests == sent  # every line was already answered
    assert len(read_results(out)) == 6


def test_run_blocking_is_the_same_job(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = plain_requests(tmp_path / "in.jsonl", 4)
    out = tmp_path / "out.jsonl"
    with anyfan.blocking.Loop("asyncio") as loop:
        summary = anyfan.batch.run_blocking(
            source, out, loop=loop, base_url=sim.url, progress="lines"
        )
    assert "4/4" in capsys.readouterr().err
    assert summary.exit_code == 0
    assert sorted(r["line"] for r in read_results(out)) == [1, 2, 3, 4]


async def test_run_refuses_changed_options(sim: Simulator, tmp_path: Path) -> None:
    source = plain_requests(tmp_path / "in.jsonl", 2)
    out = tmp_path / "out.jsonl"
    await anyfan.batch.run(source, out, base_url=sim.url)
    with pytest.raises(anyfan.batch.JobMismatch):
        await anyfan.batch.run(source, out, base_url=sim.url, max_attempts=2)
    forced = await anyfan.batch.run(source, out, base_url=sim.url, max_attempts=2, force=True)
    assert forced.exit_code == 0
