"""``anyfan run`` against a real local server that echoes secrets and refuses the account."""

from __future__ import annotations

import base64
import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
from run_helpers import SECRET, batch_line, chat, read_results, write_requests

from anyfan.batch import read_results as final_results
from anyfan.batch import state_path

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PASSWORD = "hunter2-pw-5e9a"
HAS_TRIO_AND_HTTPX = importlib.util.find_spec("trio") is not None and any(
    importlib.util.find_spec(m) for m in ("httpx2", "httpx")
)
BACKENDS = ["asyncio", *(["trio"] if HAS_TRIO_AND_HTTPX else [])]


class Echo(BaseHTTPRequestHandler):
    """Answers by the request's ``model``: ``echo`` echoes the headers back in a 400, ``quota``
    and ``deny`` refuse the account, ``flaky`` fails with a 500 while ``broken`` is set."""

    protocol_version = "HTTP/1.1"
    broken: ClassVar[bool] = True
    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model = body["model"]
        Echo.seen.append(body["messages"][0]["content"])
        auth = self.headers.get("Authorization", "")
        if model == "echo":
            status, out = 400, {"error": {"message": f"bad header {auth}", "code": "bad"}}
        elif model == "quota" and Echo.broken:
            status, out = (
                429,
                {"error": {"message": "You exceeded your quota", "code": "insufficient_quota"}},
            )
        elif model == "deny" and Echo.broken:
            status, out = (
                401,
                {"error": {"message": f"Incorrect API key {auth}", "code": "invalid_api_key"}},
            )
        elif model == "flaky" and Echo.broken:
            status, out = 500, {"error": {"message": "down", "type": "server_error"}}
        else:
            status, out = 200, {"ok": True, "usage": {"total_tokens": 3}}
        data = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-should-retry", "false")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that closes a kept-alive connection is no error here


@pytest.fixture
def echo() -> Iterator[str]:
    server = Server(("127.0.0.1", 0), Echo)
    Echo.broken, Echo.seen = True, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def lines(*models: str) -> list[str]:
    return [batch_line(f"id{n}", chat(n, model=m)) for n, m in enumerate(models)]


def test_an_echoed_key_and_password_never_reach_the_files_or_the_output(
    echo: str, tmp_path: Path, run_cli: Any
) -> None:
    src = write_requests(tmp_path / "in.jsonl", lines("echo", "ok", "echo"))
    out = tmp_path / "out.jsonl"
    url = echo.replace("http://", f"http://bob:{PASSWORD}@")
    ran = run_cli(src, "-o", out, "--base-url", url, "--concurrency", 1)
    assert ran.code == 1
    basic = base64.b64encode(f"bob:{PASSWORD}".encode()).decode()
    written = out.read_text() + state_path(out).read_text() + ran.out + ran.err
    for secret in (SECRET, PASSWORD, basic):
        assert secret not in written
    assert "bad header Bearer [redacted]" in out.read_text()
    assert "HTTP 400 bad: bad header Bearer [redacted]" in ran.out  # the summary's first message
    assert "bob:[redacted]@127.0.0.1" in state_path(out).read_text()
    other = url.replace(PASSWORD, "another-pw-123")
    ran = run_cli(src, "-o", out, "--base-url", other)
    assert ran.code == 2
    assert "password in it changed" in ran.err
    assert "another-pw-123" not in ran.err
    assert PASSWORD not in ran.err


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("model", "why"), [("quota", "no quota left"), ("deny", "refused the API key")]
)
def test_a_billing_or_auth_failure_stops_the_job_and_a_rerun_sends_the_rest(
    echo: str, tmp_path: Path, run_cli: Any, model: str, why: str, backend: str
) -> None:
    src = write_requests(tmp_path / "in.jsonl", lines("ok", "ok", model, "ok", "ok", "ok"))
    out = tmp_path / "out.jsonl"
    ran = run_cli(src, "-o", out, "--base-url", echo, "--concurrency", 1, "--backend", backend)
    assert ran.code == 3
    assert "stopped: line 3: " in ran.err
    assert why in ran.err
    assert SECRET not in ran.err + ran.out + out.read_text()
    assert [r["custom_id"] for r in read_results(out)] == ["id0", "id1"]
    # It stopped at once: at most the one request that took the freed slot went out after it.
    assert len(Echo.seen) <= 4
    Echo.broken, Echo.seen = False, []  # the cause is fixed
    ran = run_cli(src, "-o", out, "--base-url", echo, "--concurrency", 1)
    assert ran.code == 0
    assert Echo.seen == [f"Question number {n}?" for n in (2, 3, 4, 5)]
    assert sorted(r["line"] for r in read_results(out)) == [1, 2, 3, 4, 5, 6]


def test_retry_failed_sends_only_the_errors_and_supersedes_them(
    echo: str, tmp_path: Path, run_cli: Any
) -> None:
    src = write_requests(tmp_path / "in.jsonl", [*lines("ok", "flaky", "ok", "flaky"), "{bad"])
    out = tmp_path / "out.jsonl"
    ran = run_cli(src, "-o", out, "--base-url", echo, "--max-attempts", 1)
    assert ran.code == 1
    assert "HTTP 500 server_error: down" in ran.out
    Echo.broken, Echo.seen = False, []
    ran = run_cli(src, "-o", out, "--base-url", echo, "--max-attempts", 1, "--retry-failed")
    assert ran.code == 1  # the malformed line stays an error
    assert sorted(Echo.seen) == ["Question number 1?", "Question number 3?"]
    final = list(final_results(out))
    assert sorted(r["line"] for r in final) == [1, 2, 3, 4, 5]
    assert [r["response"]["status_code"] for r in final if "response" in r] == [200] * 4
    Echo.seen = []
    ran = run_cli(src, "-o", out, "--base-url", echo, "--max-attempts", 1, "--retry-failed")
    assert Echo.seen == []  # nothing left to retry but the malformed line
    assert "failed             1" in ran.out


@pytest.mark.anyio
async def test_the_python_api_stops_retries_and_scrubs_the_same_way(
    echo: str, tmp_path: Path
) -> None:
    import anyfan.batch

    src = write_requests(tmp_path / "in.jsonl", lines("echo", "flaky", "ok", "quota", "ok"))
    out = tmp_path / "out.jsonl"
    options: dict[str, Any] = {"base_url": echo, "api_key": SECRET, "max_attempts": 1}
    stopped = await anyfan.batch.run(src, out, concurrency=1, **options)
    assert stopped.exit_code == 3
    assert stopped.stopped is not None
    assert "line 4: the account has no quota left" in stopped.stopped
    assert SECRET not in out.read_text()
    assert [c[0] for c in stopped.causes] == ["HTTP 400 bad", "HTTP 500 server_error"]
    Echo.broken, Echo.seen = False, []
    rest = await anyfan.batch.run(src, out, **options)
    assert sorted(Echo.seen) == ["Question number 3?", "Question number 4?"]  # sent concurrently
    assert rest.exit_code == 1  # the echo line and the flaky one are still errors
    Echo.seen = []
    again = await anyfan.batch.run(src, out, retry_failed=True, **options)
    assert sorted(Echo.seen) == ["Question number 0?", "Question number 1?"]
    assert again.exit_code == 1  # the echo line fails again, the flaky one heals
    final = {r["line"]: r for r in final_results(out)}
    assert final[2]["response"]["status_code"] == 200
    assert final[1]["response"]["status_code"] == 400
