"""The simulator through raw httpx2 and httpx, on asyncio and trio."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from anyfan.sim import Simulator

pytestmark = pytest.mark.anyio

BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Stream me something."}],
    "max_tokens": 6,
}


@pytest.fixture(params=["httpx2", "httpx"])
def httpx_module(request: pytest.FixtureRequest) -> Any:
    return pytest.importorskip(request.param)


async def test_streamed_lines(sim: Simulator, httpx_module: Any) -> None:
    sim.set_latency(itl_ms=0.2)
    headers = {"Authorization": "Bearer sk-test"}
    async with (
        httpx_module.AsyncClient(base_url=sim.base_url, headers=headers) as client,
        client.stream("POST", "/chat/completions", json={**BODY, "stream": True}) as response,
    ):
        lines = [line async for line in response.aiter_lines() if line]
        plain = await client.post("/chat/completions", json=BODY)
    assert response.status_code == 200
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == plain.json()["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_stream_cut_surfaces_as_a_protocol_error(sim: Simulator, httpx_module: Any) -> None:
    headers = {"Authorization": "Bearer sk-test", "x-sim-fault": "cut"}
    lines: list[str] = []

    async def read_all(client: Any) -> None:
        async with client.stream("POST", "/chat/completions", json={**BODY, "stream": True}) as r:
            async for line in r.aiter_lines():
                lines.append(line)

    async with httpx_module.AsyncClient(base_url=sim.base_url, headers=headers) as client:
        with pytest.raises(httpx_module.RemoteProtocolError):
            await read_all(client)
    assert lines
    assert "data: [DONE]" not in lines
    assert sim.wait_until_idle().faults == {"cut": 1}
