"""Lines the limit could never admit fail at once; lines the server rejects cost nothing."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from run_helpers import chat, read_results, write_requests

from anyfan.batch import BatchRequest
from anyfan.batch import _send as sender
from anyfan.transport import HttpResponse

if TYPE_CHECKING:
    from pathlib import Path

    from anyfan.sim import Simulator


def test_a_rejected_response_is_settled_at_no_cost() -> None:
    _, tokens = sender.batch_limits(None, 6000)
    assert tokens is not None
    request = BatchRequest(1, "a", "POST", "/v1/chat/completions", chat(0, max_tokens=50))
    estimate = tokens.cost_of(request)
    assert estimate > 50
    for status in (400, 401, 404, 422):
        assert tokens.actual_of(request, HttpResponse(status, {}, b"{}")) == 0
    busy = HttpResponse(429, {}, b'{"usage": {"prompt_tokens": 3}}')
    assert tokens.actual_of(request, busy) == 3 + 50


def test_oversized_and_rejected_lines_do_not_stall_the_job(
    run_cli: Any, sim: Simulator, tmp_path: Path
) -> None:
    lines = [
        json.dumps(chat(0, max_tokens=10**12)),  # more than the limit admits in a minute
        json.dumps(chat(1, max_tokens=-1)),  # the server answers 400
        *(json.dumps(chat(n)) for n in range(2, 6)),
    ]
    source = write_requests(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    ran = run_cli(source, "-o", out, "--base-url", sim.url, "--tpm", 100_000)
    assert ran.code == 1
    by_line = {record["line"]: record for record in read_results(out)}
    assert set(by_line) == set(range(1, 7))
    too_large = by_line[1]["error"]
    assert too_large["code"] == "cost_too_large"
    assert "100,000 per 60 s" in too_large["message"]
    assert by_line[1]["attempts"] == 0
    assert by_line[2]["response"]["status_code"] == 400
    assert by_line[2]["attempts"] == 1  # final at once, not retried
    assert all(by_line[n]["response"]["status_code"] == 200 for n in range(3, 7))
    assert sim.counters().requests == 5  # the oversized line never went out
