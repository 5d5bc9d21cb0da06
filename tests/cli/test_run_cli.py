"""``anyfan run`` end to end against the simulator, in this process."""

from __future__ import annotations

import importlib.util
import json
from typing import TYPE_CHECKING, Any

import pytest
from run_helpers import (
    SECRET,
    batch_line,
    chat,
    plain_requests,
    read_results,
    served,
    write_requests,
)

import anyfan.batch
from anyfan.cli import _run

if TYPE_CHECKING:
    from pathlib import Path

    from anyfan.sim import Simulator

HAS_TRIO = importlib.util.find_spec("trio") is not None
HAS_HTTPX = any(importlib.util.find_spec(m) for m in ("httpx2", "httpx"))
HAS_AIOHTTP = importlib.util.find_spec("aiohttp") is not None


def by_line(results: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    lines = [r["line"] for r in results]
    assert len(lines) == len(set(lines)), "a line was answered twice"
    return {r["line"]: r for r in results}


def common(sim: Simulator, out: Path) -> list[str]:
    return ["-o", out, "--base-url", sim.base_url, "--progress", "off"]


def test_every_line_is_answered_once_with_what_the_server_served(
    sim: Simulator, tmp_path: Path, run_cli: Any
) -> None:
    src = plain_requests(tmp_path / "in.jsonl", 40)
    out = tmp_path / "out.jsonl"
    ran = run_cli(src, *common(sim, out), "--concurrency", 8)
    assert ran.code == 0, ran.err
    results = by_line(read_results(out))
    assert sorted(results) == list(range(1, 41))
    for line, result in results.items():
        n = line - 1
        assert result["custom_id"] == (f"q{n}" if n % 2 else f"line-{line}")
        assert result["response"]["status_code"] == 200
        assert result["response"]["body"] == served(sim, chat(n))
        assert result["attempts"] == 1
    assert "40 results in" in ran.out
    assert "ok                40" in ran.out
    assert f"{sim.base_url} with the built-in HTTP client on asyncio" in ran.err
    # A finished job reruns as a no-op: nothing is sent again.
    sim.reset()
    again = run_cli(src, *common(sim, out))
    assert again.code == 0
    assert "resuming: 40 lines already answered" in again.err
    assert sim.counters().requests == 0
    assert len(read_results(out)) == 40


def test_malformed_lines_and_duplicate_ids_are_errors_and_never_sent(
    sim: Simulator, tmp_path: Path, run_cli: Any
) -> None:
    src = write_requests(
        tmp_path / "in.jsonl",
        [
            batch_line("a", chat(1)),
            "{not json",
            "",
            batch_line("a", chat(2)),  # the later line with a used id is the error
            json.dumps(chat(3)),
            json.dumps([1, 2]),
            batch_line("line-5", chat(4)),  # clashes with the bare body on line 5
            batch_line("b", chat(5), url="/v1/nowhere"),
        ],
    )
    out = tmp_path / "out.jsonl"
    ran = run_cli(src, *common(sim, out))
    assert ran.code == 1
    assert sim.counters().requests == 2  # only the two good lines went out
    results = by_line(read_results(out))
    assert sorted(results) == [1, 2, 4, 5, 6, 7, 8]
    assert results[1]["response"]["status_code"] == 200
    assert results[5]["response"]["body"] == served(sim, chat(3))
    codes = {line: results[line]["error"]["code"] for line in (2, 4, 6, 7, 8)}
    assert codes == {
        2: "malformed_line",
        4: "duplicate_custom_id",
        6: "malformed_line",
        7: "duplicate_custom_id",
        8: "malformed_line",
    }
    assert all(results[line]["attempts"] == 0 for line in codes)
    for line in codes:
        assert f"anyfan run: line {line}: " in ran.err
    assert "3 malformed lines, 2 duplicate custom_id" in ran.out


def test_problem_lines_beyond_the_first_few_are_counted_not_printed(
    sim: Simulator, tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_run, "SHOWN_PROBLEMS", 2)
    src = write_requests(tmp_path / "in.jsonl", ["[]"] * 5)
    ran = run_cli(src, *common(sim, tmp_path / "out.jsonl"))
    assert ran.code == 1
    assert ran.err.count("expected a JSON object") == 2
    assert "... and 3 more problem lines" in ran.err


def test_transient_faults_are_retried_and_quota_errors_are_not(
    sim: Simulator, tmp_path: Path, run_cli: Any
) -> None:
    sim.set_faults(server_error=0.3, unavailable=0.2)
    src = plain_requests(tmp_path / "in.jsonl", 30)
    out = tmp_path / "out.jsonl"
    ran = run_cli(src, *common(sim, out), "--max-attempts", 20)
    assert ran.code == 0, ran.err
    results = read_results(out)
    assert all(r["response"]["status_code"] == 200 for r in results)
    retried = sum(r["attempts"] - 1 for r in results)
    faults = sim.counters().faults
    assert retried == faults.get("500", 0) + faults.get("503", 0) > 0
    assert f"{retried:,} retries" in ran.out

    sim.set_faults(insufficient_quota=1.0)
    sim.reset()
    quota = run_cli(
        src, *common(sim, tmp_path / "quota.jsonl"), "--max-attempts", 5, "--concurrency", 1
    )
    # A billing error never heals and is not the error of one line: the job stops at once,
    # recording none of them, so that a rerun once it is paid for sends them all.
    assert quota.code == 3
    assert "no quota left" in quota.err
    assert read_results(tmp_path / "quota.jsonl") == []
    assert sim.counters().requests <= 2  # the failing one, and at most the one in its slot


def test_a_client_error_is_kept_as_a_response_and_not_retried(
    sim: Simulator, tmp_path: Path, run_cli: Any
) -> None:
    src = write_requests(tmp_path / "in.jsonl", [json.dumps({"messages": []})])
    out = tmp_path / "out.jsonl"
    assert run_cli(src, *common(sim, out)).code == 1
    (result,) = read_results(out)
    assert result["response"]["status_code"] == 400
    assert result["response"]["body"]["error"]["param"] == "model"
    assert result["attempts"] == 1


def test_rate_limited_requests_wait_as_told_and_all_succeed(
    sim: Simulator, tmp_path: Path, run_cli: Any
) -> None:
    sim.set_limits(rpm=2400)  # 40 per 1-second slice
    src = plain_requests(tmp_path / "in.jsonl", 45)
    out = tmp_path / "out.jsonl"
    ran = run_cli(src, *common(sim, out), "--concurrency", 45, "--max-attempts", 10)
    assert ran.code == 0, ran.err
    assert all(r["response"]["status_code"] == 200 for r in read_results(out))
    limited = sim.counters().rate_limited
    assert limited > 0
    assert f"{limited:,} x 429" in ran.out


def test_under_the_servers_limit_no_request_is_refused(
    sim: Simulator, tmp_path: Path, run_cli: Any
) -> None:
    sim.set_limits(rpm=6000, tpm=300_000)
    src = plain_requests(tmp_path / "in.jsonl", 60)
    out = tmp_path / "out.jsonl"
    # At the server's very limits: the slice guard covers the loop's own delays.
    ran = run_cli(src, *common(sim, out), "--rpm", 6000, "--tpm", 300_000, "--concurrency", 60)
    assert ran.code == 0, ran.err
    assert sim.counters().rate_limited == 0
    assert "0 x 429" in ran.out
    assert "(limit 6,000:" in ran.out
    assert "(limit 300,000:" in ran.out
    assert "6,000 RPM, 300,000 TPM" in ran.err


BACKENDS = ["asyncio", *(["trio"] if HAS_TRIO and HAS_HTTPX else [])]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_hung_request_times_out_and_is_recorded_as_an_error(
    sim: Simulator, tmp_path: Path, run_cli: Any, backend: str
) -> None:
    sim.set_faults(hang=1.0)
    src = plain_requests(tmp_path / "in.jsonl", 2)
    out = tmp_path / "out.jsonl"
    ran = run_cli(
        src, *common(sim, out), "--timeout", 0.2, "--max-attempts", 2, "--backend", backend
    )
    assert ran.code == 1
    results = read_results(out)
    assert [r["error"]["code"] for r in results] == ["timeout", "timeout"]
    assert all(r["attempts"] == 2 for r in results)
    assert sim.wait_until_idle().requests == 4


def test_connection_failures_are_recorded_as_errors(tmp_path: Path, run_cli: Any) -> None:
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    src = plain_requests(tmp_path / "in.jsonl", 3)
    out = tmp_path / "out.jsonl"
    ran = run_cli(src, "-o", out, "--base-url", f"http://127.0.0.1:{port}/v1", "--max-attempts", 1)
    assert ran.code == 1
    errors = [r["error"] for r in read_results(out)]
    assert [e["code"] for e in errors] == ["connection_error"] * 3
    assert all(e["message"].startswith("ConnectionFailed: ") for e in errors)


@pytest.mark.skipif(not HAS_TRIO, reason="needs trio")
def test_trio_backend_posts_with_the_built_in_client(
    sim: Simulator, tmp_path: Path, run_cli: Any
) -> None:
    sim.set_faults(reset=0.2)
    src = plain_requests(tmp_path / "in.jsonl", 20)
    out = tmp_path / "out.jsonl"
    ran = run_cli(src, *common(sim, out), "--backend", "trio", "--max-attempts", 20)
    assert ran.code == 0, ran.err
    assert " on trio, " in ran.err
    assert " with the built-in HTTP client" in ran.err
    for result in read_results(out):
        assert result["response"]["body"] == served(sim, chat(result["line"] - 1))


@pytest.mark.skipif(not (HAS_TRIO and HAS_HTTPX), reason="needs trio and httpx")
def test_trio_backend_posts_with_httpx(sim: Simulator, tmp_path: Path, run_cli: Any) -> None:
    sim.set_faults(reset=0.2)
    src = plain_requests(tmp_path / "in.jsonl", 20)
    out = tmp_path / "out.jsonl"
    ran = run_cli(
        src, *common(sim, out), "--backend", "trio", "--http-client", "httpx", "--max-attempts", 20
    )
    assert ran.code == 0, ran.err
    assert " on trio, " in ran.err
    assert " with httpx" in ran.err
    for result in read_results(out):
        assert result["response"]["body"] == served(sim, chat(result["line"] - 1))


@pytest.mark.skipif(not HAS_HTTPX, reason="needs httpx")
def test_httpx_can_be_chosen_on_asyncio(sim: Simulator, tmp_path: Path, run_cli: Any) -> None:
    src = plain_requests(tmp_path / "in.jsonl", 5)
    ran = run_cli(src, *common(sim, tmp_path / "out.jsonl"), "--http-client", "httpx")
    assert ran.code == 0, ran.err
    assert " with httpx" in ran.err


def test_plain_progress_lines_go_to_stderr(sim: Simulator, tmp_path: Path, run_cli: Any) -> None:
    src = plain_requests(tmp_path / "in.jsonl", 3)
    out = tmp_path / "out.jsonl"
    ran = run_cli(src, "-o", out, "--base-url", sim.base_url, "--progress", "plain")
    assert ran.code == 0
    assert "anyfan: 3/3 (100.0%)" in ran.err
    assert "anyfan:" not in ran.out


def test_a_torn_last_line_is_cut_off_and_that_request_sent_again(
    sim: Simulator, tmp_path: Path, run_cli: Any
) -> None:
    src = plain_requests(tmp_path / "in.jsonl", 4)
    out = tmp_path / "out.jsonl"
    assert run_cli(src, *common(sim, out)).code == 0
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:2]) + lines[2][:25])  # as a kill mid-write leaves it
    sim.reset()
    ran = run_cli(src, *common(sim, out))
    assert ran.code == 0
    assert "cut a torn last line (25 bytes)" in ran.err
    assert sorted(r["line"] for r in read_results(out)) == [1, 2, 3, 4]
    assert sim.counters().requests == 2


def test_changed_input_or_options_are_detected_before_anything_is_sent(
    sim: Simulator, tmp_path: Path, run_cli: Any
) -> None:
    src = plain_requests(tmp_path / "in.jsonl", 3)
    out = tmp_path / "out.jsonl"
    assert run_cli(src, *common(sim, out)).code == 0
    with src.open("a", encoding="utf-8") as f:
        f.write(json.dumps(chat(99)) + "\n")
    sim.reset()
    ran = run_cli(src, *common(sim, out))
    assert ran.code == 2
    assert "holds results for a different input or different options" in ran.err
    assert "--restart" in ran.err
    assert sim.counters().requests == 0

    forced = run_cli(src, *common(sim, out), "--force")
    assert forced.code == 0
    assert sorted(r["line"] for r in read_results(out)) == [1, 2, 3, 4]
    assert sim.counters().requests == 1

    other = run_cli(src, *common(sim, out), "--max-attempts", 2)
    assert other.code == 2
    assert "max_attempts" in other.err
    # Pace options may change freely between runs.
    assert run_cli(src, *common(sim, out), "--rpm", 100, "--concurrency", 3).code == 0

    restarted = run_cli(src, *common(sim, out), "--max-attempts", 2, "--restart")
    assert restarted.code == 0
    assert "resuming" not in restarted.err
    assert len(read_results(out)) == 4


def test_a_results_file_in_use_is_refused(sim: Simulator, tmp_path: Path, run_cli: Any) -> None:
    from anyfan.batch import BatchJob

    src = plain_requests(tmp_path / "in.jsonl", 1)
    out = tmp_path / "out.jsonl"
    with BatchJob.open(src, out, {"held": True}):
        ran = run_cli(src, *common(sim, out))
    assert ran.code == 2
    assert "another process is writing" in ran.err


def test_missing_input_file_is_reported(sim: Simulator, tmp_path: Path, run_cli: Any) -> None:
    ran = run_cli(tmp_path / "nope.jsonl", *common(sim, tmp_path / "out.jsonl"))
    assert ran.code == 2
    assert "nope.jsonl: No such file or directory" in ran.err


def test_input_given_as_output_is_refused(sim: Simulator, tmp_path: Path, run_cli: Any) -> None:
    src = plain_requests(tmp_path / "in.jsonl", 1)
    ran = run_cli(src, *common(sim, src))
    assert ran.code == 2
    assert "is the input file" in ran.err


def test_a_real_endpoint_needs_a_key(
    tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    src = plain_requests(tmp_path / "in.jsonl", 1)
    out = tmp_path / "out.jsonl"
    ran = run_cli(src, "-o", out)
    assert ran.code == 2
    assert "no API key: set the environment variable OPENAI_API_KEY" in ran.err
    assert "https://api.openai.com/v1" in ran.err
    assert not out.exists()
    named = run_cli(src, "-o", out, "--api-key-env", "MY_KEY")
    assert "set the environment variable MY_KEY" in named.err


def test_a_local_server_needs_no_key(
    sim: Simulator, tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    src = plain_requests(tmp_path / "in.jsonl", 2)
    local = sim.base_url.replace("127.0.0.1", "localhost")
    ran = run_cli(src, "-o", tmp_path / "out.jsonl", "--base-url", local, "--progress", "off")
    assert ran.code == 0, ran.err


def test_the_key_is_read_from_the_named_variable(
    sim: Simulator, tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_KEY", "sk-named")
    sim.set_limits(rpm=1)  # one request per key: a second on the same key would be refused
    src = plain_requests(tmp_path / "in.jsonl", 1)
    a = run_cli(src, *common(sim, tmp_path / "a.jsonl"), "--max-attempts", 1)
    b = run_cli(
        src, *common(sim, tmp_path / "b.jsonl"), "--max-attempts", 1, "--api-key-env", "MY_KEY"
    )
    assert (a.code, b.code) == (0, 0)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/v1", "must be an http:// or https:// URL"),
        ("http:///v1", "must be an http:// or https:// URL"),
        ("https://example.com/v1?x=1", "cannot have a query"),
    ],
)
def test_bad_base_urls_are_refused(tmp_path: Path, run_cli: Any, url: str, problem: str) -> None:
    ran = run_cli(tmp_path / "in.jsonl", "-o", tmp_path / "out.jsonl", "--base-url", url)
    assert ran.code == 2
    assert problem in ran.err


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("--concurrency", "0", "must be at least 1, got 0"),
        ("--rpm", "-5", "must be a positive number, got -5"),
        ("--tpm", "inf", "must be a positive number, got inf"),
        ("--timeout", "soon", "must be a number, got 'soon'"),
    ],
)
def test_bad_numbers_are_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
    problem: str,
) -> None:
    from anyfan import cli

    with pytest.raises(SystemExit) as exc_info:
        cli.main(["run", str(tmp_path / "in.jsonl"), "-o", "x", option, value])
    assert exc_info.value.code == 2
    assert problem in capsys.readouterr().err


def test_restart_and_force_exclude_each_other(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from anyfan import cli

    with pytest.raises(SystemExit):
        cli.main(["run", "in.jsonl", "-o", "out.jsonl", "--restart", "--force"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_missing_trio_is_explained(
    sim: Simulator, tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "trio" else real(name, *a)
    )
    ran = run_cli(tmp_path / "in.jsonl", *common(sim, tmp_path / "o"), "--backend", "trio")
    assert ran.code == 2
    assert "pip install 'anyfan[trio]'" in ran.err


@pytest.mark.skipif(not HAS_TRIO, reason="needs trio")
def test_missing_http_client_is_explained(
    sim: Simulator, tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    missing = {"aiohttp", "httpx", "httpx2"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in missing else real(name, *a)
    )
    aiohttp = run_cli(
        tmp_path / "in.jsonl", *common(sim, tmp_path / "o"), "--http-client", "aiohttp"
    )
    assert aiohttp.code == 2
    assert "pip install 'anyfan[aiohttp]'" in aiohttp.err
    trio = run_cli(
        tmp_path / "in.jsonl",
        *common(sim, tmp_path / "o"),
        "--backend",
        "trio",
        "--http-client",
        "httpx",
    )
    assert trio.code == 2
    assert "needs httpx: pip install httpx" in trio.err


def test_a_full_disk_stops_the_job_with_the_results_whole(
    sim: Simulator, tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anyfan.batch import _journal

    src = plain_requests(tmp_path / "in.jsonl", 10)
    out = tmp_path / "out.jsonl"
    real_write = _journal.os.write
    writes = 0

    def failing_write(fd: int, data: bytes) -> int:
        nonlocal writes
        writes += 1
        if writes > 3:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(_journal.os, "write", failing_write)
    # On trio where possible: coverage loses track of an error that crosses uvloop.
    backend = "trio" if HAS_TRIO and HAS_HTTPX else "asyncio"
    ran = run_cli(src, *common(sim, out), "--concurrency", 1, "--backend", backend)
    monkeypatch.undo()
    assert ran.code == 1
    assert "out.jsonl: No space left on device" in ran.err
    assert len(read_results(out)) == 3


def test_nothing_in_the_output_names_the_key(sim: Simulator, tmp_path: Path, run_cli: Any) -> None:
    sim.set_faults(server_error=0.2, reset=0.2, unavailable=0.1)  # quota would stop the job
    src = write_requests(
        tmp_path / "in.jsonl",
        [*(json.dumps(chat(n)) for n in range(20)), "{bad", batch_line("line-1", chat(1))],
    )
    out = tmp_path / "out.jsonl"
    ran = run_cli(src, "-o", out, "--base-url", sim.base_url, "--progress", "plain")
    texts = [ran.out, ran.err, out.read_text(), (tmp_path / "out.jsonl.anyfan.json").read_text()]
    assert all(SECRET not in text for text in texts)
    assert "line 21" in ran.err


def test_helpers() -> None:
    assert _run.is_loopback("http://127.0.0.2:8000/v1")
    assert _run.is_loopback("http://[::1]:8000")
    assert _run.is_loopback("http://api.localhost")
    assert not _run.is_loopback("https://api.openai.com/v1")
    assert not _run.is_loopback("http://10.0.0.1/v1")
    assert _run.shown_url("https://user:pw@host:8443/v1") == "https://host:8443/v1"
    assert _run.shown_url("https://user@[::1]/v1") == "https://[::1]/v1"
    assert _run.shown_url("https://host/v1") == "https://host/v1"
    assert _run.check_base_url("http://host/v1/") == "http://host/v1"


def test_the_placeholder_key_is_sent_to_local_servers_without_one() -> None:
    import argparse

    args = argparse.Namespace(
        concurrency=1,
        rpm=None,
        tpm=None,
        redis=None,
        quota_key=None,
        max_attempts=1,
        timeout=1.0,
        http_client="auto",
        max_response_bytes=1024,
    )
    settings = _run.settings_from(args, "http://127.0.0.1/v1", None)
    assert settings.headers["Authorization"] == f"Bearer {anyfan.batch.PLACEHOLDER_KEY}"
    keyed = _run.settings_from(args, "http://127.0.0.1/v1", SECRET)
    assert SECRET not in repr(keyed)
    assert keyed.secret == SECRET


def test_uses_limits_text() -> None:
    import argparse

    local = _run.send_settings()
    assert _run._limits_text(argparse.Namespace(rpm=None, tpm=None), local) == "no rate limit"
    assert _run._limits_text(argparse.Namespace(rpm=500.0, tpm=None), local) == "500 RPM"


def test_an_interrupt_before_the_handlers_are_in_place_still_closes_the_job(
    sim: Simulator, tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_run, "run_on", interrupted)
    src = plain_requests(tmp_path / "in.jsonl", 3)
    ran = run_cli(src, *common(sim, tmp_path / "out.jsonl"))
    assert ran.code == _run.EXIT_INTERRUPTED
    assert "rerun the same command to resume" in ran.err
    assert "3 results" not in ran.out


def test_runs_from_a_worker_thread_without_signal_handling(
    sim: Simulator, tmp_path: Path, run_cli: Any
) -> None:
    import threading

    src = plain_requests(tmp_path / "in.jsonl", 3)
    codes: list[int] = []
    worker = threading.Thread(
        target=lambda: codes.append(run_cli(src, *common(sim, tmp_path / "out.jsonl")).code)
    )
    worker.start()
    worker.join()
    assert codes == [0]
    assert len(read_results(tmp_path / "out.jsonl")) == 3


def test_bare_bodies_go_to_the_endpoint_named(sim: Simulator, tmp_path: Path, run_cli: Any) -> None:
    body = {"model": "text-embedding-3-small", "input": "embed me"}
    src = write_requests(tmp_path / "in.jsonl", [json.dumps(body)])
    out = tmp_path / "out.jsonl"
    ran = run_cli(src, *common(sim, out), "--endpoint", "/v1/embeddings")
    assert ran.code == 0, ran.err
    (result,) = read_results(out)
    assert result["response"]["body"] == served(sim, body, "/v1/embeddings")
    # The endpoint decides what the results mean: changing it is a changed option.
    other = run_cli(src, *common(sim, out))
    assert other.code == 2
    assert "batch.default_url" in other.err


@pytest.mark.skipif(not HAS_AIOHTTP, reason="needs aiohttp")
def test_aiohttp_can_be_chosen(sim: Simulator, tmp_path: Path, run_cli: Any) -> None:
    sim.set_faults(reset=0.2, stream_cut=0.1)
    src = plain_requests(tmp_path / "in.jsonl", 20)
    out = tmp_path / "out.jsonl"
    ran = run_cli(src, *common(sim, out), "--http-client", "aiohttp", "--max-attempts", 20)
    assert ran.code == 0, ran.err
    assert " with aiohttp on asyncio" in ran.err
    for result in read_results(out):
        assert result["response"]["body"] == served(sim, chat(result["line"] - 1))
