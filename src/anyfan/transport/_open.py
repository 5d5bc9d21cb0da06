"""Choosing and opening the HTTP client for the running event loop."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final, Literal, Protocol

import anyio.lowlevel

from ._response import DEFAULT_MAX_RESPONSE_BYTES, check_max_response_bytes

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from ._response import HttpResponse

ClientName = Literal["auto", "builtin", "aiohttp", "httpx"]
CLIENTS: Final = ("auto", "builtin", "aiohttp", "httpx")
#: httpx's maintained fork first: the openai SDK (3.x) depends on it.
HTTPX_MODULES: Final = ("httpx2", "httpx")


class Transport(Protocol):
    """Posts JSON bytes and returns the whole response."""

    name: str
    #: Whether it enforces the timeout given to `open_transport` itself.
    handles_timeout: bool

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
    """The client to post with: ``"builtin"``, ``"aiohttp"``, ``"httpx2"`` or ``"httpx"``.

    ``"auto"`` takes the built-in client (the cheapest by far) on every backend.

    Raises:
        ValueError: ``client`` is not one of `CLIENTS`, or is asyncio-only on trio.
        ImportError: The client wanted is not installed; the message says what to install.
    """
    if client not in CLIENTS:
        raise ValueError(f"client must be one of {', '.join(CLIENTS)}, got {client!r}")
    if client == "aiohttp" and backend != "asyncio":
        raise ValueError(
            f"the aiohttp client runs only on asyncio, not on {backend}; use builtin or httpx"
        )
    if client in ("auto", "builtin"):
        return "builtin"
    if client == "aiohttp":
        if not _installed("aiohttp"):
            raise ImportError("the aiohttp client is not installed: pip install 'anyfan[aiohttp]'")
        return "aiohttp"
    httpx = next((m for m in HTTPX_MODULES if _installed(m)), None)
    if httpx is None:
        raise ImportError(f"posting requests on {backend} needs httpx: pip install httpx")
    return httpx


@asynccontextmanager
async def open_transport(
    headers: Mapping[str, str],
    concurrency: int,
    *,
    client: ClientName = "auto",
    timeout: float | None = None,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> AsyncIterator[Transport]:
    """Open a client for the running event loop, with ``concurrency`` connections at most.

    Args:
        headers: Sent with every request, such as ``Authorization``. Never
            shown in a repr or an error.
        concurrency: Most connections open at once (match the requests in flight).
        client: ``"auto"``, ``"builtin"``, ``"aiohttp"`` or ``"httpx"``; see `choose_client`.
        timeout: Seconds one request may take, for a transport that times
            requests itself (see ``Transport.handles_timeout``).
        max_response_bytes: The largest response body read; past it a request
            fails with `ResponseTooLarge` and its connection is dropped, so
            memory stays bounded whatever a server sends.

    Raises:
        ValueError: ``max_response_bytes`` is not a positive int.
    """
    check_max_response_bytes(max_response_bytes)
    backend = running_backend()
    name = choose_client(backend, client)
    transport: Transport
    if name == "builtin" and backend == "asyncio":
        from ._lean import LeanTransport  # asyncio's protocols: one layer fewer than streams

        transport = LeanTransport(headers, concurrency, timeout, max_response_bytes)
    elif name == "builtin":
        from ._streams import StreamTransport

        transport = StreamTransport(headers, concurrency, timeout, max_response_bytes)
    elif name == "aiohttp":
        from ._aiohttp import AiohttpTransport

        transport = AiohttpTransport(headers, concurrency, timeout, max_response_bytes)
    else:
        from ._httpx import HttpxTransport

        transport = HttpxTransport(
            importlib.import_module(name), headers, concurrency, max_response_bytes
        )
    try:
        yield transport
    finally:
        with anyio.CancelScope(shield=True):
            await transport.aclose()
