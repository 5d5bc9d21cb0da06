"""The simulator's bare ASGI application: routing, timing and faults (the I/O layer).

It runs on uvicorn's httptools protocol and an asyncio (uvloop) loop, and is
written for low CPU per request: no framework, no validation library, bodies
spliced from prebuilt bytes where that pays. All state lives in `SimState`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final, Literal

from . import _responses as responses
from ._config import Fault, Faults, Latency, ServerLimits, as_dict
from ._content import reply_length, reply_text, reply_tokens, request_digest, response_id
from ._latency import first_token_delay, reply_delay, token_offsets
from ._requests import PARSERS, ApiRequest, BadRequest, Endpoint

if TYPE_CHECKING:
    from ._state import SimState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

#: The POST routes of the API, each parsed into an `ApiRequest` for its endpoint.
_ENDPOINTS: Final[dict[str, Endpoint]] = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
}
#: The GET route listing models (``/v1/models``) or naming one (``/v1/models/{id}``).
Route = Literal[Endpoint, "models"]


def route(method: str, path: str) -> Route | None:
    """The API route a request names, or ``None`` when there is none (a 404)."""
    if method == "GET" and (path == "/v1/models" or path.startswith("/v1/models/")):
        return "models"
    if method == "POST":
        return _ENDPOINTS.get(path)
    return None


_JSON: Final = (b"content-type", b"application/json")
_SSE: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
_FAULTS_BY_NAME: Final = {fault.value: fault for fault in Fault}
_NO_FAULT: Final = "none"
_decode = json.JSONDecoder().decode
_LINGER_ZERO: Final = struct.pack("ii", 1, 0)


class ConnectionResetOnPurpose(ConnectionError):
    """Raised to make a non-uvicorn ASGI server drop a connection the simulator resets."""


def abort_connection(send: Send, *, reset: bool = True) -> None:
    """Drop the client's connection: reset it (TCP RST), or close it after what was sent.

    A reset discards anything unsent, so a body cut half-way is closed
    instead: the client reads the half, then meets the end of the stream.

    uvicorn gives an ASGI app no handle on its connection, so this reaches the
    transport through the ``send`` callable's request cycle, marks the cycle
    disconnected (uvicorn then neither logs nor answers for the app), and
    falls back to raising when the server is not uvicorn.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionResetOnPurpose("anyfan.sim dropped this connection on purpose")
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        transport.abort()
    else:
        transport.close()
    cycle.disconnected = True  # type: ignore[union-attr]


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    while message.get("more_body"):
        message = await receive()
        body += message.get("body", b"")
    return body


class _Overrides:
    """Per-request settings from ``x-sim-*`` headers."""

    __slots__ = ("fault", "itl_ms", "ttft_ms")

    def __init__(self) -> None:
        self.fault: Fault | str | None = _NO_FAULT  # the string: not forced either way
        self.ttft_ms: float | None = None
        self.itl_ms: float | None = None


def _header_ms(name: str, value: bytes) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise BadRequest(f"Invalid '{name}' header: expected milliseconds >= 0, got {value!r}.")
    return number


def _overrides(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, _Overrides | None]:
    """Return the bearer token and the ``x-sim-*`` overrides of a request."""
    key = None
    overrides = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                key = token.strip().decode("latin-1")
        elif name.startswith(b"x-sim-"):
            overrides = overrides or _Overrides()
            if name == b"x-sim-fault":
                text = value.decode("latin-1").strip().lower()
                if text != _NO_FAULT and text not in _FAULTS_BY_NAME:
                    choices = ", ".join([_NO_FAULT, *_FAULTS_BY_NAME])
                    raise BadRequest(f"Invalid 'x-sim-fault' header {text!r}: expected {choices}.")
                overrides.fault = _FAULTS_BY_NAME.get(text)
            elif name == b"x-sim-latency-ms":
                overrides.ttft_ms = _header_ms("x-sim-latency-ms", value)
            elif name == b"x-sim-itl-ms":
                overrides.itl_ms = _header_ms("x-sim-itl-ms", value)
    return key, overrides


class SimApp:
    """The ASGI application of one simulator."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self._idle: list[asyncio.Future[None]] = []

    async def until_idle(self) -> None:
        """Return once no API request is in flight (run on the server's loop)."""
        if self.state.tally.in_flight:
            idle = asyncio.get_running_loop().create_future()
            self._idle.append(idle)
            await idle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope (HTTP only)."""
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        try:
            if path.startswith("/v1/"):
                await self._v1(path, scope, receive, send)
            elif path.startswith("/sim/"):
                await self._control(path, scope["method"], receive, send)
            else:
                await self._not_found(scope, send)
        except asyncio.CancelledError:
            # The server is stopping: drop the connection rather than leave a hung client.
            abort_connection(send)

    # -- plumbing -------------------------------------------------------------------

    async def _respond(self, send: Send, status: int, body: bytes, headers: Headers = ()) -> None:  # type: ignore[assignment]
        self.state.tally.responded(status)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [_JSON, (b"content-length", b"%d" % len(body)), *headers],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _not_found(self, scope: Scope, send: Send) -> None:
        message = f"Invalid URL ({scope['method']} {scope['path']})"
        await self._respond(send, 404, responses.error(message, "invalid_request_error"))

    async def _sleep_until(self, deadline: float) -> None:
        delay = deadline - self.state.clock()
        if delay > 0:
            await asyncio.sleep(delay)

    # -- the API ----------------------------------------------------------------------

    async def _v1(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        tally = self.state.tally
        tally.arrived()
        try:
            await self._api(path, scope, receive, send)
        finally:
            tally.left()
            if not tally.in_flight and self._idle:
                for idle in self._idle:
                    if not idle.done():
                        idle.set_result(None)
                self._idle.clear()

    async def _api(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        body_bytes = await _read_body(receive)
        arrival = state.clock()
        endpoint = route(scope["method"], path)
        if endpoint is None:
            return await self._not_found(scope, send)
        try:
            key, overrides = _overrides(scope["headers"])
            if key is None:
                return await self._respond(send, 401, responses.MISSING_KEY)
            if endpoint == "models":
                return await self._models(path, send)
            try:
                body = _decode(body_bytes.decode())
            except ValueError:  # UnicodeDecodeError included
                return await self._respond(send, 400, responses.BAD_JSON)
            if not isinstance(body, dict):
                raise BadRequest("The request body must be a JSON object.")
            request = PARSERS[endpoint](body)
        except BadRequest as exc:
            error = responses.error(exc.message, "invalid_request_error", exc.param)
            return await self._respond(send, 400, error)

        if overrides is None or isinstance(overrides.fault, str):
            fault = state.dice.roll(state.faults)
        else:
            fault = overrides.fault
        tally = state.tally
        if fault is Fault.INSUFFICIENT_QUOTA:
            tally.fault(fault.value)
            return await self._respond(send, 429, responses.INSUFFICIENT_QUOTA)

        now = arrival - state.epoch
        decision = state.limiter.admit(key, request.charge, now)
        if not decision.admitted:
            tally.rate_limited += 1
            headers = decision.headers
            if decision.wait != math.inf:
                wait_ms = max(1, math.ceil(decision.wait * 1000))
                headers = [
                    *headers,
                    (b"retry-after", b"%d" % math.ceil(wait_ms / 1000)),
                    (b"retry-after-ms", b"%d" % wait_ms),
                ]
            return await self._respond(
                send, 429, responses.rate_limit_error(request.model, decision), headers
            )
        tally.admitted_at(now, request.charge, request.prompt_tokens)

        if fault is not None:
            tally.fault(fault.value)
            if fault is Fault.SERVER_ERROR:
                return await self._respond(send, 500, responses.SERVER_ERROR)
            if fault is Fault.UNAVAILABLE:
                return await self._respond(send, 503, responses.UNAVAILABLE)
            if fault is Fault.RESET:
                return abort_connection(send)
            if fault is Fault.HANG:
                # Wait for the client to give up (uvicorn then reports a disconnect);
                # stopping the server cancels this wait.
                await receive()
                return None

        state.served += 1
        headers = [(b"x-request-id", b"req_%016x" % state.served), *decision.headers]
        latency = state.latency
        if overrides is not None and (
            overrides.ttft_ms is not None or overrides.itl_ms is not None
        ):
            latency = replace(
                latency,
                ttft_ms=latency.ttft_ms if overrides.ttft_ms is None else overrides.ttft_ms,
                itl_ms=latency.itl_ms if overrides.itl_ms is None else overrides.itl_ms,
            )
        start = arrival
        if fault is Fault.SLOW_FIRST_BYTE:
            start += state.faults.slow_first_byte_ms / 1000.0
        cut = fault is Fault.STREAM_CUT
        if request.endpoint == "embeddings":
            return await self._embed(send, request, latency, start, headers, cut)
        if request.stream:
            return await self._stream(send, body, request, latency, start, headers, cut)
        return await self._complete(send, body, request, latency, start, headers, cut)

    async def _models(self, path: str, send: Send) -> None:
        models = self.state.models()
        if path == "/v1/models":
            return await self._respond(send, 200, responses.model_list(models))
        model = path.removeprefix("/v1/models/")
        if model in models:
            return await self._respond(send, 200, responses.encode(responses.model_entry(model)))
        message = f"The model '{model}' does not exist or you do not have access to it."
        error = responses.error(message, "invalid_request_error", None, "model_not_found")
        return await self._respond(send, 404, error)

    def _replies(
        self, body: dict[str, Any], request: ApiRequest
    ) -> tuple[bytes, list[tuple[int, str]]]:
        """Return the request's digest, and each choice's length and finish reason."""
        content = self.state.content
        digest = request_digest(body, content.seed)
        shortest, longest = content.reply_tokens
        cap = request.max_tokens
        replies = []
        for choice in range(request.choices):
            natural = reply_length(digest, choice, shortest, longest)
            if cap is not None and natural > cap:
                replies.append((cap, "length"))
            else:
                replies.append((natural, "stop"))
        return digest, replies

    async def _send_cut(self, send: Send, status: int, body: bytes, headers: Headers) -> None:
        """Start a full-length response, send half of it, then reset the connection."""
        self.state.tally.responded(status)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [_JSON, (b"content-length", b"%d" % len(body)), *headers],
            }
        )
        await send(
            {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
        )
        abort_connection(send)

    async def _complete(
        self,
        send: Send,
        body: dict[str, Any],
        request: ApiRequest,
        latency: Latency,
        start: float,
        headers: Headers,
        cut: bool,
    ) -> None:
        digest, replies = self._replies(body, request)
        written = sum(count for count, _ in replies)
        self.state.tally.completion_tokens += written
        build = (
            responses.chat_completion if request.endpoint == "chat" else responses.text_completion
        )
        payload = build(
            response_id(digest),
            request.model,
            [
                (reply_text(digest, choice, count), finish)
                for choice, (count, finish) in enumerate(replies)
            ],
            request.prompt_tokens,
            written,
        )
        longest = max(count for count, _ in replies)
        due = start + reply_delay(latency, request.prompt_tokens, longest, self.state.jitter)
        await self._sleep_until(due)
        if cut:
            return await self._send_cut(send, 200, payload, headers)
        return await self._respond(send, 200, payload, headers)

    async def _embed(
        self,
        send: Send,
        request: ApiRequest,
        latency: Latency,
        start: float,
        headers: Headers,
        cut: bool,
    ) -> None:
        state = self.state
        dimensions = request.dimensions or state.content.embedding_dimensions
        pool = state.pool
        vector = pool.base64 if request.base64 else pool.floats
        inputs = request.inputs or []
        vectors = [vector(request.model, item, dimensions) for item in inputs]
        payload = responses.embeddings(request.model, vectors, request.prompt_tokens)
        await self._sleep_until(
            start + first_token_delay(latency, request.prompt_tokens, state.jitter)
        )
        if cut:
            return await self._send_cut(send, 200, payload, headers)
        return await self._respond(send, 200, payload, headers)

    async def _stream(
        self,
        send: Send,
        body: dict[str, Any],
        request: ApiRequest,
        latency: Latency,
        start: float,
        headers: Headers,
        cut: bool,
    ) -> None:
        state = self.state
        digest, replies = self._replies(body, request)
        written = sum(count for count, _ in replies)
        state.tally.completion_tokens += written
        writer = responses.ChunkWriter(
            chat=request.endpoint == "chat",
            rid=response_id(digest),
            model=request.model,
            include_usage=request.include_usage,
        )
        longest = max(count for count, _ in replies)
        if latency.is_zero:
            offsets = [0.0] * longest
        else:
            offsets = token_offsets(latency, request.prompt_tokens, longest, state.jitter)
        # (event, seconds after start when it is due)
        events: list[tuple[bytes, float]] = []
        for index, (count, finish) in enumerate(replies):
            tokens = reply_tokens(digest, index, count)
            first = writer.start(index)
            if first:
                events.append((first, offsets[0]))
            events.extend(
                (writer.token(index, token), offsets[i]) for i, token in enumerate(tokens)
            )
            events.append((writer.finish(index, finish), offsets[len(tokens) - 1]))
        last = offsets[-1]
        if request.include_usage:
            events.append((writer.usage(request.prompt_tokens, written), last))
        events.append((responses.DONE, last))
        if cut:
            del events[len(events) // 2 :]

        started = False
        pending: list[bytes] = []
        clock = state.clock
        for event, due in events:
            delay = start + due - clock()
            if delay > 0:
                if pending:
                    started = await self._flush(send, started, pending, headers)
                await asyncio.sleep(delay)
            pending.append(event)
        if cut:
            await self._flush(send, started, pending, headers)
            return abort_connection(send, reset=False)
        if not started:
            state.tally.responded(200)
            await send({"type": "http.response.start", "status": 200, "headers": [*_SSE, *headers]})
        await send({"type": "http.response.body", "body": b"".join(pending)})
        return None

    async def _flush(
        self, send: Send, started: bool, pending: list[bytes], headers: Headers
    ) -> bool:
        if not started:
            self.state.tally.responded(200)
            await send({"type": "http.response.start", "status": 200, "headers": [*_SSE, *headers]})
        await send({"type": "http.response.body", "body": b"".join(pending), "more_body": True})
        pending.clear()
        return True

    # -- controls ---------------------------------------------------------------------

    async def _control(self, path: str, method: str, receive: Receive, send: Send) -> None:
        state = self.state
        body = await _read_body(receive)
        if path == "/sim/counters" and method == "GET":
            payload = responses.encode(state.counters().to_dict())
        elif path == "/sim/reset" and method == "POST":
            state.reset()
            payload = b"{}"
        elif path == "/sim/config" and method in ("GET", "POST"):
            if method == "POST":
                try:
                    apply_config(state, json.loads(body or b"{}"))
                except (TypeError, ValueError) as exc:
                    error = responses.error(str(exc), "invalid_request_error")
                    return await self._respond_plain(send, 400, error)
            payload = responses.encode(config_of(state))
        else:
            error = responses.error(f"Invalid URL ({method} {path})", "invalid_request_error")
            return await self._respond_plain(send, 404, error)
        return await self._respond_plain(send, 200, payload)

    async def _respond_plain(self, send: Send, status: int, body: bytes) -> None:
        """Answer a control request: not counted among the API's responses."""
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [_JSON, (b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})


def config_of(state: SimState) -> dict[str, Any]:
    """Return the runtime settings as JSON-ready values."""
    return {
        "limits": as_dict(state.limits),
        "faults": as_dict(state.faults),
        "latency": as_dict(state.latency),
    }


def apply_config(state: SimState, data: object) -> None:
    """Apply a ``POST /sim/config`` body: each section given replaces that setting."""
    if not isinstance(data, dict):
        raise TypeError("the config must be a JSON object")
    unknown = set(data) - {"limits", "faults", "latency"}
    if unknown:
        raise ValueError(f"unknown config sections: {', '.join(sorted(unknown))}")
    sections: dict[str, type[ServerLimits] | type[Faults] | type[Latency]] = {
        "limits": ServerLimits,
        "faults": Faults,
        "latency": Latency,
    }
    built: dict[str, Any] = {}
    for name, value in data.items():
        if not isinstance(value, dict):
            raise TypeError(f"config section {name!r} must be an object")
        built[name] = sections[name](**value)
    state.configure(**built)
