"""Helpers of the framework tests: the how-to's code, real servers on 127.0.0.1, a load client."""

from __future__ import annotations

import importlib.util
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

#: The how-to pages include these files, so the tests run exactly the code the pages show.
CODE = Path(__file__).resolve().parents[2] / "docs" / "how-to" / "code"

#: Requests a second the simulator allows (its limit and the Fan's): the test's
#: 200 requests take about 4 s, and the client reaches far more with time to spare.
RPM = 3_000
TPM = 1_000_000
KEY = "sk-frameworks-test"
#: A bound on every load loop: no request may take longer than this.
REQUEST_TIMEOUT = 60.0


def how_to(name: str) -> ModuleType:
    """Import ``docs/how-to/code/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"how_to_{name}", CODE / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def http() -> Any:
    """The async HTTP client library the openai SDK is built on (httpx2, or httpx)."""
    for name in ("httpx2", "httpx"):
        if importlib.util.find_spec(name) is not None:
            return importlib.import_module(name)
    pytest.skip("no httpx flavour is installed")


def _listening() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


@contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn on an ephemeral port; yield its base URL."""
    import uvicorn

    sock = _listening()
    config = uvicorn.Config(app, log_level="warning", lifespan="on", backlog=1024)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
    assert not thread.is_alive()


@contextmanager
def wsgi_server(app: Any) -> Iterator[str]:
    """Serve the WSGI ``app`` with werkzeug's threaded server on an ephemeral port."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    server.socket.listen(1024)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(30)
    assert not thread.is_alive()


async def post_all(base_url: str, texts: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """POST every text to ``/ask`` at once; return each ``(status, JSON body)`` in order."""
    httpx = http()
    results: list[Any] = [None] * len(texts)
    limits = httpx.Limits(max_connections=len(texts), max_keepalive_connections=len(texts))
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=REQUEST_TIMEOUT) as c:

        async def one(i: int) -> None:
            response = await c.post("/ask", json={"text": texts[i]})
            results[i] = (response.status_code, response.json())

        with anyio.fail_after(REQUEST_TIMEOUT * 2):
            async with anyio.create_task_group() as tg:
                for i in range(len(texts)):
                    tg.start_soon(one, i)
    return results
