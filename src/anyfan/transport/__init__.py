"""A lean HTTP transport: post JSON bytes, get status, headers and raw body back.

Built for `anyfan run`, where the HTTP client is most of a request's CPU. The
built-in client runs everywhere: under asyncio on asyncio's protocols (a
quarter of aiohttp's CPU per request), under trio on non-blocking sockets
through anyio (about a tenth of httpx's); both share one sans-I/O response
parser. aiohttp (asyncio only) and httpx2/httpx can be chosen. One client is opened per job, with a
connection pool as large as the concurrency. Non-2xx responses are returned,
not raised; the caller raises `HttpStatusError` when it wants the engine to
consider a retry; `anyfan.openai.classify_exception` understands it,
`ConnectionFailed` and `RequestTimeout`. A transport whose ``handles_timeout``
is true times each request itself; otherwise the caller must.
"""

from ._open import CLIENTS, ClientName, Transport, choose_client, open_transport, running_backend
from ._response import (
    DEFAULT_MAX_RESPONSE_BYTES,
    ConnectionFailed,
    HttpResponse,
    HttpStatusError,
    RequestTimeout,
    ResponseTooLarge,
    check_max_response_bytes,
)

__all__ = [
    "CLIENTS",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "ClientName",
    "ConnectionFailed",
    "HttpResponse",
    "HttpStatusError",
    "RequestTimeout",
    "ResponseTooLarge",
    "Transport",
    "check_max_response_bytes",
    "choose_client",
    "open_transport",
    "running_backend",
]
