"""A batch job driven by the engine, on every backend: lazily, out of order, stopped midway."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import anyfan
from anyfan.batch import BatchJob, BatchRequest

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def make_input(path: Path, n: int) -> None:
    lines = []
    for i in range(1, n + 1):
        if i % 17 == 0:
            lines.append("{broken")
        elif i % 2:
            lines.append(json.dumps({"model": "m", "i": i}))
        else:
            lines.append(
                json.dumps(
                    {
                        "custom_id": f"id-{i}",
                        "method": "POST",
                        "url": "/v1/chat/completions",
                        "body": {"i": i},
                    }
                )
            )
    path.write_text("\n".join(lines) + "\n")


async def send(req: BatchRequest) -> dict[str, Any]:
    for _ in range(req.line % 4):  # finish out of input order
        await anyio.lowlevel.checkpoint()
    if req.line % 10 == 0:
        raise RuntimeError(f"boom {req.line}")
    return {"echo": req.custom_id, "i": req.body["i"]}


async def drive(job: BatchJob, stop_after: int | None = None) -> int:
    recorded = 0
    async with anyfan.stream(send, job.pending(), concurrency=8) as outcomes:
        async for o in outcomes:
            if o.error is None:
                job.record(o.item, 200, o.value, attempts=o.attempts, latency=o.elapsed)
            else:
                job.record_error(o.item, o.error, attempts=o.attempts, latency=o.elapsed)
            recorded += 1
            if recorded == stop_after:
                break  # leaving the stream cancels the calls still in flight
    return recorded


async def test_engine_fills_the_results_exactly_once(tmp_path: Path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    make_input(src, 300)
    with BatchJob.open(src, out) as job:
        first = await drive(job, stop_after=100)
        assert job.in_flight > 0  # some calls were cancelled, unrecorded
    assert first == 100
    with BatchJob.open(src, out) as job:
        await drive(job)
        assert job.in_flight == 0
        summary = job.summary()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["line"] for r in records) == list(range(1, 301))
    for r in records:
        i = r["line"]
        if i % 17 == 0:
            assert r["error"]["code"] == "malformed_line"
        elif i % 10 == 0:
            assert r["error"] == {"type": "RuntimeError", "message": f"boom {i}"}
        else:
            cid = f"line-{i}" if i % 2 else f"id-{i}"
            assert r["custom_id"] == cid
            assert r["response"]["body"] == {"echo": cid, "i": i}
    failing = {i for i in range(1, 301) if i % 17 == 0 or i % 10 == 0}
    assert summary.total_failed == len(failing)
    assert summary.total_ok == 300 - len(failing)
