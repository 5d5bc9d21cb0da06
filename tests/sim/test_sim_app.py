"""Corners of the ASGI app that a real server rarely shows, driven by fake ASGI callables."""

from __future__ import annotations

import json
from typing import Any

import pytest

import anyfan.sim
from anyfan.sim import Faults, Latency, ServerLimits
from anyfan.sim._app import ConnectionResetOnPurpose, SimApp, abort_connection, route
from anyfan.sim._requests import parse_completions
from anyfan.sim._state import Content, SimState

pytestmark = pytest.mark.anyio


def _app() -> SimApp:
    return SimApp(
        SimState(limits=ServerLimits(), faults=Faults(), latency=Latency(), content=Content())
    )


class _Transport:
    def __init__(self) -> None:
        self.aborted = False
        self.closed = False

    def get_extra_info(self, name: str) -> Any:
        return None

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True


class _Cycle:
    """Stands in for uvicorn's request cycle, whose bound ``send`` leads to the transport."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.disconnected = False
        self.sent: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


async def test_request_body_in_pieces() -> None:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode()
    pieces = [
        {"type": "http.request", "body": body[:10], "more_body": True},
        {"type": "http.request", "body": body[10:], "more_body": False},
    ]

    async def receive() -> dict[str, Any]:
        return pieces.pop(0)

    cycle = _Cycle(_Transport())
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [(b"authorization", b"Bearer k"), (b"x-sim-unknown", b"1")],
    }
    await _app()(scope, receive, cycle.send)
    assert cycle.sent[0]["status"] == 200
    assert json.loads(cycle.sent[1]["body"])["object"] == "chat.completion"


async def test_other_scopes_are_ignored() -> None:
    cycle = _Cycle(_Transport())

    async def receive() -> dict[str, Any]:  # pragma: no cover - never called
        raise AssertionError

    await _app()({"type": "websocket"}, receive, cycle.send)
    assert cycle.sent == []


def test_abort_without_a_socket_still_drops_the_transport() -> None:
    transport = _Transport()
    cycle = _Cycle(transport)
    abort_connection(cycle.send)
    assert transport.aborted
    assert cycle.disconnected
    closed = _Cycle(_Transport())
    abort_connection(closed.send, reset=False)
    assert closed.transport.closed


def test_abort_on_another_server_raises() -> None:
    async def send(message: dict[str, Any]) -> None:  # pragma: no cover - never called
        pass

    with pytest.raises(ConnectionResetOnPurpose, match="on purpose"):
        abort_connection(send)


def test_completions_accept_lists_of_token_lists() -> None:
    request = parse_completions({"model": "m", "prompt": [[1, 2], [3]]})
    assert request.choices == 2
    assert request.prompt_tokens == 3


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/v1/chat/completions", "chat"),
        ("POST", "/v1/completions", "completions"),
        ("POST", "/v1/embeddings", "embeddings"),
        ("GET", "/v1/models", "models"),
        ("GET", "/v1/models/gpt-4o-mini", "models"),
        ("GET", "/v1/chat/completions", None),
        ("POST", "/v1/models", None),
        ("GET", "/v1/modelsx", None),
        ("POST", "/v1/nothing", None),
    ],
)
def test_each_route_is_named(method: str, path: str, expected: str | None) -> None:
    assert route(method, path) == expected


def test_the_former_name_of_server_limits_still_works() -> None:
    assert anyfan.sim.Limits is ServerLimits
