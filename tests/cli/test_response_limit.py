"""A response body larger than ``max_response_bytes`` fails its request, with every client.

The server here never ends its body; what is checked is that the client
stops reading (the server could send only a little past the limit) and that
the line fails with a clear error instead of the job growing without bound.
"""

from __future__ import annotations

import importlib.util
import pickle
from typing import TYPE_CHECKING, Any

import pytest
from endless_server import EndlessServer, Framing
from run_helpers import plain_requests, read_results

import anyfan.batch
from anyfan.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    ResponseTooLarge,
    check_max_response_bytes,
    open_transport,
)

if TYPE_CHECKING:
    from pathlib import Path

LIMIT = 1024 * 1024
#: What may be in flight past the limit: socket buffers on both sides and one read.
SLACK = 16 * 1024 * 1024

CLIENTS = [
    pytest.param("builtin", id="builtin"),
    pytest.param(
        "aiohttp",
        id="aiohttp",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("aiohttp") is None, reason="aiohttp is not installed"
        ),
    ),
    pytest.param(
        "httpx",
        id="httpx",
        marks=pytest.mark.skipif(
            all(importlib.util.find_spec(m) is None for m in ("httpx2", "httpx")),
            reason="httpx is not installed",
        ),
    ),
]


#: httpx under trio leaves its connection's inner byte-stream generator for the
#: garbage collector when a body is abandoned (the connection is closed all the
#: same); trio reports that as a ResourceWarning. Not ours to fix.
_HTTPX_TRIO_GENERATOR = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning", "ignore::ResourceWarning"
)


def _skip_unless_runs_on(client: str, backend: str) -> None:
    if client == "aiohttp" and backend != "asyncio":
        pytest.skip(f"the {client} client runs only on asyncio")


@pytest.mark.anyio
@_HTTPX_TRIO_GENERATOR
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("framing", ["chunked", "length", "close"])
async def test_an_endless_body_fails_at_the_limit(
    client: Any, framing: Framing, backend_name: str
) -> None:
    _skip_unless_runs_on(client, backend_name)
    with EndlessServer(framing) as server:
        async with open_transport({}, 2, client=client, max_response_bytes=LIMIT) as http:
            with pytest.raises(ResponseTooLarge, match="larger than 1,048,576 bytes"):
                await http.post(server.url + "/chat/completions", b"{}")
    assert server.sent < LIMIT + SLACK


@pytest.mark.anyio
@pytest.mark.parametrize("client", CLIENTS)
async def test_a_body_under_the_limit_is_read_whole(client: Any, backend_name: str) -> None:
    _skip_unless_runs_on(client, backend_name)
    with EndlessServer("close", cap=3 * 65536) as server:  # framed by the end of the connection
        async with open_transport({}, 2, client=client, max_response_bytes=LIMIT) as http:
            response = await http.post(server.url + "/chat/completions", b"{}")
    assert response.status == 200
    assert response.body == b"x" * (3 * 65536)


def test_the_error_pickles_with_its_limit() -> None:
    error = pickle.loads(pickle.dumps(ResponseTooLarge(5000)))
    assert isinstance(error, ResponseTooLarge)
    assert error.limit == 5000
    assert "larger than 5,000 bytes" in str(error)


@pytest.mark.anyio
@_HTTPX_TRIO_GENERATOR
@pytest.mark.parametrize("client", CLIENTS)
async def test_anyfan_run_fails_the_line_and_goes_on(
    client: Any, backend_name: str, tmp_path: Path
) -> None:
    _skip_unless_runs_on(client, backend_name)
    source = plain_requests(tmp_path / "in.jsonl", 3)
    out = tmp_path / "out.jsonl"
    with EndlessServer("chunked") as server:
        summary = await anyfan.batch.run(
            source, out, base_url=server.url, client=client, max_response_bytes=LIMIT
        )
    assert summary.exit_code == 1
    records = read_results(out)
    assert len(records) == 3
    for record in records:
        assert record["error"]["code"] == "response_too_large"
        assert "larger than 1,048,576 bytes" in record["error"]["message"]
        assert record["attempts"] == 1  # not retried: it would only happen again
    assert server.sent < 3 * (LIMIT + SLACK)


def test_the_cli_option_reaches_the_transport(run_cli: Any, tmp_path: Path) -> None:
    source = plain_requests(tmp_path / "in.jsonl", 1)
    out = tmp_path / "out.jsonl"
    with EndlessServer("length") as server:
        ran = run_cli(source, "-o", out, "--base-url", server.url, "--max-response-bytes", 5000)
    assert ran.code == 1
    (record,) = read_results(out)
    assert record["error"]["code"] == "response_too_large"
    assert "larger than 5,000 bytes" in record["error"]["message"]


def test_the_limit_must_be_a_positive_int(run_cli: Any, tmp_path: Path) -> None:
    assert check_max_response_bytes(DEFAULT_MAX_RESPONSE_BYTES) == 64 * 1024 * 1024
    for bad in (0, -1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="max_response_bytes must be a positive int"):
            check_max_response_bytes(bad)
    with pytest.raises(ValueError, match="max_response_bytes"):
        anyfan.batch.send_settings(max_response_bytes=0)
    source = plain_requests(tmp_path / "in.jsonl", 1)
    with pytest.raises(SystemExit):
        run_cli(source, "-o", tmp_path / "out.jsonl", "--max-response-bytes", "0")
