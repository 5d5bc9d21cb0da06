"""Failures by cause, the jobs' stoppers, and the rate's fencepost."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from test_batch_job import answer, batch, write_input

from anyfan.batch import BatchJob, Counters, JobStopped, read_results
from anyfan.batch._causes import (
    body_value,
    error_cause,
    error_text,
    job_stopper,
    response_cause,
)

if TYPE_CHECKING:
    from pathlib import Path


def quota(code: str, message: str = "m") -> bytes:
    return json.dumps({"error": {"message": message, "type": "t", "code": code}}).encode()


def test_causes_tell_billing_from_rate_limits() -> None:
    assert response_cause(429, quota("insufficient_quota", "pay")) == (
        "HTTP 429 insufficient_quota",
        "pay",
    )
    assert response_cause(429, quota("rate_limit_exceeded"))[0] == "HTTP 429 rate_limit_exceeded"
    html = b"<html>bad\n gateway</html>"
    assert response_cause(502, html) == ("HTTP 502", "<html>bad gateway</html>")
    assert response_cause(500, {"error": {"type": "server_error"}}) == ("HTTP 500 server_error", "")
    assert response_cause(500, [1]) == ("HTTP 500", "")
    assert error_cause({"code": "timeout", "message": "TimeoutError: 5 s"}) == (
        "timeout",
        "TimeoutError: 5 s",
    )
    assert error_cause({"type": "ValueError"}) == ("ValueError", "")
    assert error_cause("x") == ("error", "x")
    assert len(response_cause(400, {"error": {"message": "y" * 1000}})[1]) == 300
    assert body_value(b"\xff") == "\ufffd"


@pytest.mark.parametrize(
    ("status", "body", "stops"),
    [
        (401, quota("invalid_api_key", "Incorrect API key"), "refused the API key"),
        (403, b"", "denied access"),
        (429, quota("insufficient_quota"), "no quota left"),
        (429, quota("billing_hard_limit_reached"), "no quota left"),
        (429, quota("rate_limit_exceeded"), None),
        (400, quota("invalid_request_error"), None),
        (500, b"", None),
    ],
)
def test_which_failures_stop_the_job(status: int, body: bytes, stops: str | None) -> None:
    reason = job_stopper(status, body)
    if stops is None:
        assert reason is None
    else:
        assert reason is not None
        assert stops in reason
        assert f"HTTP {status}" in reason


def test_the_summary_breaks_failures_down_by_cause_with_the_first_message() -> None:
    c = Counters(failed=4)
    c.note_cause("HTTP 429 insufficient_quota", "You exceeded your current quota")
    c.note_cause("timeout", "TimeoutError: slow")
    c.note_cause("HTTP 429 insufficient_quota", "a later message")
    c.note_cause("connection_error", "")
    c.stopped = "the account has no quota left"
    s = c.summary()
    assert s.causes == (
        ("HTTP 429 insufficient_quota", 2, "You exceeded your current quota"),
        ("timeout", 1, "TimeoutError: slow"),
        ("connection_error", 1, ""),
    )
    lines = s.format().splitlines()
    assert "             2  HTTP 429 insufficient_quota: You exceeded your current quota" in lines
    assert "             1  connection_error" in lines
    assert lines[-1] == "  stopped: the account has no quota left"
    assert s.exit_code == 3


def test_a_paced_run_reports_its_pace_not_more() -> None:
    # Six requests paced 1 s apart (60 RPM), each answered 50 ms after it was sent: the
    # old count of 6 requests over 5.05 s said 71 RPM, 119% of the limit.
    c = Counters()
    c.first_at = 0.0
    for n in range(6):
        c.ok += 1
        c.tokens += 100
        c.note_request(n + 0.05, 0.05)
    s = c.summary()
    assert s.requests_per_minute == pytest.approx(60.0)
    assert s.tokens_per_minute == pytest.approx(6000.0)
    assert "(limit 60: 100.0%)" in s.format(rpm_limit=60)


def test_a_failure_of_the_whole_job_stops_it_and_is_not_recorded(tmp_path: Path) -> None:
    src = write_input(tmp_path / "in.jsonl", [batch("a", n=1), batch("b", n=2), batch("c", n=3)])
    out = tmp_path / "out.jsonl"
    with BatchJob.open(src, out, secrets=["sk-secret-1234"]) as job:
        a, b, _ = job.pending()
        answer(job, a)
        with pytest.raises(JobStopped, match=r"line 2: the account has no quota left") as caught:
            job.record(b, 429, None, raw=quota("insufficient_quota", "sk-secret-1234 has none"))
        assert "sk-secret-1234" not in caught.value.reason
        summary = job.summary()
    assert summary.exit_code == 3
    assert summary.stopped == caught.value.reason
    assert [r["line"] for r in read_results(out)] == [1]
    with BatchJob.open(src, out) as job:  # the rerun sends what still needs it
        assert [r.custom_id for r in job.pending()] == ["b", "c"]


def test_one_request_has_no_rate() -> None:
    c = Counters(ok=1)
    c.first_at = 0.0
    c.note_request(0.01, 0.01)
    assert c.summary().requests_per_minute is None
    assert "RPM" not in c.summary().format(rpm_limit=60)


def test_an_error_names_its_root_cause_when_its_message_drops_it() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)")
        except OSError as exc:
            raise OSError("All connection attempts failed") from exc
    except OSError as exc:
        text = error_text(exc)
    assert text == (
        "OSError: All connection attempts failed (ConnectionRefusedError: "
        "[Errno 111] Connect call failed ('127.0.0.1', 9))"
    )
    same = ValueError("boom")
    same.__context__ = OSError("boom")
    assert error_text(same) == "ValueError: boom"  # the cause adds nothing
    assert error_text(TimeoutError()) == "TimeoutError: TimeoutError"
    loop = RuntimeError("a")
    loop.__context__ = RuntimeError("b")
    loop.__context__.__context__ = loop
    assert error_text(loop) == "RuntimeError: a (RuntimeError: b)"


def test_the_rate_leaves_the_limiters_burst_out_of_the_pace() -> None:
    # A limiter with a burst of 2 starts two requests at once, then one a second: six
    # requests span 4 s. Counting 5 intervals in them said 75 RPM, 125% of a 60 RPM limit.
    c = Counters(burst=2.0)
    for start in (0.0, 0.0, 1.0, 2.0, 3.0, 4.0):
        c.ok += 1
        c.note_request(start + 0.05, 0.05)
    assert c.summary().requests_per_minute == pytest.approx(60.0)
    c = Counters(ok=2, burst=2.0)
    c.note_request(0.1, 0.1)
    c.note_request(0.1, 0.1)
    assert c.summary().requests_per_minute is None
