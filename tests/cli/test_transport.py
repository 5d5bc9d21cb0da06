"""The lean transport: aiohttp on asyncio, httpx2/httpx anywhere, one result type, no key leaks."""

from __future__ import annotations

import importlib
import importlib.util
import json
import pickle
import socket
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import pytest
from run_helpers import SECRET, chat

from anyfan.openai import classify_exception
from anyfan.transport import (
    ConnectionFailed,
    HttpResponse,
    HttpStatusError,
    RequestTimeout,
    choose_client,
    open_transport,
    running_backend,
)
from anyfan.transport import _open as transport_open

if TYPE_CHECKING:
    from anyfan.sim import Simulator

HEADERS = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
HTTPX_MODULES = [m for m in ("httpx2", "httpx") if importlib.util.find_spec(m)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def combinations() -> list[Any]:
    """Each backend with each client that runs on it (aiohttp: asyncio only)."""
    backends: list[tuple[str, str, dict[str, Any]]] = [("asyncio", "asyncio", {})]
    if importlib.util.find_spec("uvloop"):
        backends.append(("asyncio+uvloop", "asyncio", {"use_uvloop": True}))
    if importlib.util.find_spec("trio"):
        backends.append(("trio", "trio", {}))
    combos = []
    for label, backend, options in backends:
        if backend == "asyncio":
            combos.append(pytest.param(((backend, options), "builtin"), id=f"{label}-builtin"))
        if backend == "asyncio" and importlib.util.find_spec("aiohttp"):
            combos.append(pytest.param(((backend, options), "aiohttp"), id=f"{label}-aiohttp"))
        if HTTPX_MODULES:
            combos.append(pytest.param(((backend, options), "httpx"), id=f"{label}-httpx"))
    return combos


@pytest.fixture(params=combinations())
def combination(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
def anyio_backend(combination: Any) -> Any:
    """Overrides the shared fixture: backends come paired with a client here."""
    return combination[0]


@pytest.fixture
def client_name(combination: Any) -> str:
    return str(combination[1])


@pytest.mark.anyio
async def test_posts_and_returns_status_headers_and_raw_bytes(
    sim: Simulator, client_name: str, backend_name: str
) -> None:
    sim.set_limits(rpm=1000)
    assert running_backend() == backend_name
    url = sim.base_url + "/chat/completions"
    async with open_transport(HEADERS, 4, client=client_name) as http:
        assert http.name.startswith("built-in" if client_name == "builtin" else client_name)
        assert SECRET not in repr(http)
        response = await http.post(url, json.dumps(chat(1)).encode())
        bad = await http.post(url, b'{"messages": []}')
    assert response.status == response.status_code == 200
    assert response.ok
    assert response.headers["x-ratelimit-limit-requests"] == "1000"
    assert response.headers.get("X-RateLimit-Limit-Requests") == "1000"  # any case
    assert isinstance(response.body, bytes)
    assert response.json()["object"] == "chat.completion"
    assert (bad.status, bad.ok) == (400, False)


@pytest.mark.anyio
async def test_a_reset_connection_and_a_refused_one_raise_connection_failed(
    sim: Simulator, client_name: str
) -> None:
    sim.set_faults(reset=1.0)
    async with open_transport(HEADERS, 2, client=client_name) as http:
        with pytest.raises(ConnectionFailed) as reset:
            await http.post(sim.base_url + "/chat/completions", json.dumps(chat(1)).encode())
        with pytest.raises(ConnectionFailed) as refused:
            await http.post(f"http://127.0.0.1:{free_port()}/v1/x", b"{}")
    for info in (reset, refused):
        assert SECRET not in str(info.value)
        assert info.value.__cause__ is None  # the client's request (and its headers) stay behind
        assert classify_exception(info.value).retry


@pytest.mark.anyio
async def test_asyncio_clients_time_requests_themselves(sim: Simulator, client_name: str) -> None:
    sim.set_faults(hang=1.0)
    async with open_transport(HEADERS, 2, client=client_name, timeout=0.1) as http:
        # httpx bounds each read, not the whole request: the engine times those calls.
        assert http.handles_timeout is (client_name != "httpx")
        if http.handles_timeout:
            with pytest.raises(RequestTimeout, match=r"no complete response within 0\.1 s") as e:
                await http.post(sim.base_url + "/chat/completions", json.dumps(chat(1)).encode())
            assert classify_exception(e.value).retry
    # From a thread: the event loop must run on, to close the abandoned connection.
    counters = await anyio.to_thread.run_sync(sim.wait_until_idle)
    assert counters.in_flight == 0


def test_choose_client(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = {"aiohttp", "httpx2", "httpx"}
    monkeypatch.setattr(transport_open, "_installed", lambda name: name in installed)
    assert choose_client("asyncio") == "builtin"
    assert choose_client("asyncio", "builtin") == "builtin"
    assert choose_client("asyncio", "aiohttp") == "aiohttp"
    assert choose_client("asyncio", "httpx") == "httpx2"
    assert choose_client("trio") == "builtin"
    assert choose_client("trio", "builtin") == "builtin"
    assert choose_client("trio", "httpx") == "httpx2"
    installed.discard("httpx2")
    assert choose_client("trio", "httpx") == "httpx"
    installed.discard("aiohttp")
    with pytest.raises(ImportError, match=r"pip install 'anyfan\[aiohttp\]'"):
        choose_client("asyncio", "aiohttp")
    installed.clear()
    assert choose_client("asyncio") == "builtin"  # needs nothing installed
    assert choose_client("trio") == "builtin"
    with pytest.raises(ImportError, match="needs httpx: pip install httpx"):
        choose_client("trio", "httpx")
    with pytest.raises(ValueError, match="the aiohttp client runs only on asyncio, not on trio"):
        choose_client("trio", "aiohttp")
    with pytest.raises(ValueError, match="client must be one of auto, builtin, aiohttp, httpx"):
        choose_client("asyncio", "requests")  # type: ignore[arg-type]


def error_response(status: int, body: Any, **headers: str) -> HttpResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpResponse(status, headers, raw)


def test_status_errors_read_like_sdk_errors() -> None:
    limited = HttpStatusError(
        error_response(
            429,
            {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}},
            **{"retry-after-ms": "1500"},
        )
    )
    assert str(limited) == "HTTP 429 rate_limit_exceeded: Rate limit reached"
    assert limited.status_code == 429
    assert limited.headers == {"retry-after-ms": "1500"}
    verdict = classify_exception(limited)
    assert (verdict.retry, verdict.delay) == (True, 1.5)

    quota = HttpStatusError(
        error_response(429, {"error": {"message": "billing", "type": "insufficient_quota"}})
    )
    assert not classify_exception(quota).retry
    assert classify_exception(HttpStatusError(error_response(500, b"oops"))).retry
    assert not classify_exception(HttpStatusError(error_response(400, {"error": {}}))).retry

    html = HttpStatusError(error_response(502, b"<html>bad gateway</html>"))
    assert str(html) == "HTTP 502"
    assert html.body is None
    long = HttpStatusError(error_response(500, {"error": {"message": "x" * 500, "code": 7}}))
    assert str(long) == "HTTP 500: " + "x" * 197 + "..."

    copy = pickle.loads(pickle.dumps(limited))
    assert (str(copy), copy.status_code) == (str(limited), 429)


def test_a_response_that_is_not_json_decodes_to_none() -> None:
    assert HttpResponse(200, {}, b"<html>").json() is None
    assert HttpResponse(200, {}, b"[1]").json() == [1]
