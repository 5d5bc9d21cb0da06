"""Choosing and opening the HTTP client for the running event loop."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final, Literal, Protocol

import anyio.lowlevel

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from ._response import HttpResponse

ClientName = Literal["auto", "aiohttp", "httpx"]
CLIENTS: Final = ("auto", "aiohttp", "httpx")
#: httpx's maintained fork first: the openai SDK (3.x) depends on it.
HTTPX_MODULES: Final = ("httpx2", "httpx")


class Transport(Protocol):
    """Posts JSON bytes and returns the whole response."""

    name: str

    async def post(self, url: str, body: bytes) -> HttpResponse:
        """POST ``body`` to ``url``; raise `ConnectionFailed` when no response comes."""
        ...

    async def aclose(self) -> None:
        """Release the connections."""
        ...


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def running_backend() -> str:
    """``"asyncio"`` or ``"trio"``: the event loop this is called from."""
    loop = anyio.lowlevel.current_token().native_token
    return "asyncio" if isinstance(loop, asyncio.AbstractEventLoop) else "trio"


def choose_client(backend: str, client: ClientName = "auto") -> str:
    """The module to post with: ``"aiohttp"``, ``"httpx2"`` or ``"httpx"``.

    ``"auto"`` takes aiohttp under asyncio and httpx2 (else httpx) elsewhere,
    or whichever of them is installed.

    Raises:
        ValueError: ``client`` is not one of `CLIENTS`, or aiohttp is asked for on trio.
        ImportError: The client wanted is not installed; the message says what to install.
    """
    if client not in CLIENTS:
        raise ValueError(f"client must be one of {', '.join(CLIENTS)}, got {client!r}")
    if client == "aiohttp" and backend != "asyncio":
        raise ValueError(f"aiohttp runs only on asyncio, not on {backend}; use httpx")
    httpx = next((m for m in HTTPX_MODULES if _installed(m)), None)
    if client in ("auto", "aiohttp") and backend == "asyncio" and _installed("aiohttp"):
        return "aiohttp"
    if client != "aiohttp" and httpx is not None:
        return httpx
    if client == "aiohttp":
        raise ImportError("the aiohttp client is not installed: pip install 'anyfan[aiohttp]'")
    wanted = "'anyfan[aiohttp]' (or httpx)" if backend == "asyncio" else "httpx"
    raise ImportError(f"posting requests on {backend} needs an HTTP client: pip install {wanted}")


@asynccontextmanager
async def open_transport(
    headers: Mapping[str, str], concurrency: int, *, client: ClientName = "auto"
) -> AsyncIterator[Transport]:
    """Open a client for the running event loop, with ``concurrency`` connections at most.

    Args:
        headers: Sent with every request, such as ``Authorization``. Never
            shown in a repr or an error.
        concurrency: Most connections open at once (match the requests in flight).
        client: ``"auto"``, ``"aiohttp"`` or ``"httpx"``; see `choose_client`.
    """
    name = choose_client(running_backend(), client)
    transport: Transport
    if name == "aiohttp":
        from ._aiohttp import AiohttpTransport

        transport = AiohttpTransport(headers, concurrency)
    else:
        from ._httpx import HttpxTransport

        transport = HttpxTransport(importlib.import_module(name), headers, concurrency)
    try:
        yield transport
    finally:
        with anyio.CancelScope(shield=True):
            await transport.aclose()
