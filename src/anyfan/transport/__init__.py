"""A lean HTTP transport: post JSON bytes, get status, headers and raw body back.

Built for `anyfan run`, where the HTTP client is most of a request's CPU:
aiohttp under asyncio (the ``aiohttp`` extra), httpx2 or httpx under trio.
One client is opened per job, with a connection pool as large as the
concurrency. Non-2xx responses are returned, not raised; the caller raises
`HttpStatusError` when it wants the engine to consider a retry;
`anyfan.openai.classify_exception` understands it and `ConnectionFailed`.
Slow responses are left to the engine's own per-call timeout.
"""

from ._open import CLIENTS, ClientName, Transport, choose_client, open_transport, running_backend
from ._response import ConnectionFailed, HttpResponse, HttpStatusError

__all__ = [
    "CLIENTS",
    "ClientName",
    "ConnectionFailed",
    "HttpResponse",
    "HttpStatusError",
    "Transport",
    "choose_client",
    "open_transport",
    "running_backend",
]
