"""A minimal HTTP/1.1 server answering every POST with one canned chat completion.

It parses just enough to frame requests (``Content-Length``) and keeps
connections alive; it does no JSON, no limits and no latency. It stands
opposite a client in a benchmark so that the client's own ceiling shows: the
simulator costs far more CPU per request than this.

Run ``python benchmarks/_rawserver.py``: it prints ``raw server: serving URL``
(the base URL, ending in ``/v1``), serves until SIGINT or SIGTERM, then prints
a JSON line with ``requests`` and ``cpu_seconds``. Uses uvloop when installed.
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import sys

BODY = json.dumps(
    {
        "id": "chatcmpl-raw",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "OK."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
    },
    separators=(",", ":"),
).encode()
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)


class Served:
    """Requests answered so far, by every connection."""

    requests = 0


class Exchange(asyncio.Protocol):
    """One connection: answer each whole request as it arrives."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        answered = 0
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            lower = bytes(buffer[:end]).lower()
            at = lower.find(b"content-length:")
            length = 0
            if at >= 0:
                line_end = lower.find(b"\r\n", at)
                length = int(lower[at + 15 : line_end if line_end >= 0 else None])
            if len(buffer) < end + 4 + length:
                break
            del buffer[: end + 4 + length]
            answered += 1
        if answered:
            Served.requests += answered
            assert self.transport is not None
            self.transport.write(RESPONSE * answered)


async def main() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Exchange, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"raw server: serving http://127.0.0.1:{port}/v1", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    print(json.dumps({"requests": Served.requests, "cpu_seconds": cpu}), flush=True)


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    sys.exit(0)
