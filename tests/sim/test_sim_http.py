"""The simulator over raw HTTP: aiohttp (asyncio) and httpx/httpx2 (asyncio and trio)."""

from __future__ import annotations

import json
import re
from importlib.util import find_spec
from typing import Any

import anyio
import pytest

from anyfan.sim import Counters, Simulator

aiohttp = pytest.importorskip("aiohttp")
pytestmark = pytest.mark.anyio

KEY = {"Authorization": "Bearer sk-test"}
CHAT: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Hello there, simulator."}],
    "max_tokens": 10,
}
GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+(\.\d+)?(ms|s))$")


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(
            ("asyncio", {"use_uvloop": True}),
            id="asyncio+uvloop",
            marks=pytest.mark.skipif(not find_spec("uvloop"), reason="needs uvloop"),
        ),
    ]
)
def asyncio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
def anyio_backend(asyncio_backend: Any) -> Any:
    """aiohttp runs on asyncio only."""
    return asyncio_backend


async def _post(
    sim: Simulator, path: str, body: Any = CHAT, headers: dict[str, str] | None = None
) -> tuple[int, Any, bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(sim.url + path, data=data, headers={**KEY, **(headers or {})}) as response,
    ):
        return response.status, response.headers.copy(), await response.read()


async def _get(sim: Simulator, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(sim.url + path) as response:
        return response.status, await response.json()


async def test_success_carries_rate_limit_headers(sim: Simulator) -> None:
    sim.set_limits(rpm=600, tpm=60_000)
    status, headers, body = await _post(sim, "/v1/chat/completions")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["x-ratelimit-limit-requests"] == "600"
    assert headers["x-ratelimit-remaining-requests"] == "599"
    assert headers["x-ratelimit-limit-tokens"] == "60000"
    charged = 3 + 4 + 6 + 10
    assert int(headers["x-ratelimit-remaining-tokens"]) == 60_000 - charged
    assert GO_DURATION.match(headers["x-ratelimit-reset-requests"])
    assert headers["x-ratelimit-reset-tokens"] == "23ms"  # 23 tokens at 1,000 per second
    assert headers["x-request-id"].startswith("req_")
    assert json.loads(body)["usage"]["prompt_tokens"] == 13


async def test_token_429_body_and_headers(sim: Simulator) -> None:
    sim.set_limits(tpm=1000)
    big = {**CHAT, "max_tokens": 600}
    assert (await _post(sim, "/v1/chat/completions", big))[0] == 200
    status, headers, body = await _post(sim, "/v1/chat/completions", big)
    assert status == 429
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("tokens", None, "rate_limit_exceeded")
    match = re.search(
        r"on tokens per min \(TPM\): Limit 1000, Used (\d+), Requested 613\. "
        r"Please try again in (\S+)\. Visit",
        error["message"],
    )
    assert match, error["message"]
    assert 600 <= int(match.group(1)) <= 613
    assert GO_DURATION.match(match.group(2))
    assert "x-ratelimit-limit-requests" not in headers
    assert headers["x-ratelimit-limit-tokens"] == "1000"
    wait_ms = int(headers["retry-after-ms"])
    assert 12_000 < wait_ms <= 13_560  # 226 tokens short, at 1000/60 per second
    assert headers["retry-after"] == str(-(-wait_ms // 1000))
    counters = sim.counters()
    assert counters.rate_limited == 1
    assert counters.tokens_charged == 613


async def test_request_too_large_has_no_retry_after(sim: Simulator) -> None:
    sim.set_limits(tpm=100)
    status, headers, body = await _post(sim, "/v1/chat/completions", {**CHAT, "max_tokens": 200})
    assert status == 429
    assert json.loads(body)["error"]["message"].startswith("Request too large for gpt-4o-mini")
    assert "retry-after" not in headers
    assert "retry-after-ms" not in headers


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "words"),
    [
        ("/v1/chat/completions", b"{nope", {}, 400, "could not parse the JSON body"),
        ("/v1/chat/completions", [1, 2], {}, 400, "must be a JSON object"),
        ("/v1/chat/completions", {"model": "m"}, {}, 400, "'messages' must be"),
        ("/v1/chat/completions", CHAT, {"x-sim-fault": "boom"}, 400, "x-sim-fault"),
        ("/v1/chat/completions", CHAT, {"x-sim-latency-ms": "-1"}, 400, "x-sim-latency-ms"),
        ("/v1/chat/completions", CHAT, {"x-sim-itl-ms": "soon"}, 400, "x-sim-itl-ms"),
        ("/v1/chat/completions", CHAT, {"Authorization": "Basic abc"}, 401, "API key"),
        ("/v1/chat/completions", CHAT, {"Authorization": "Bearer  "}, 401, "API key"),
        ("/v1/nothing", CHAT, {}, 404, "Invalid URL (POST /v1/nothing)"),
        ("/elsewhere", CHAT, {}, 404, "Invalid URL (POST /elsewhere)"),
        ("/v1/models", CHAT, {}, 404, "Invalid URL (POST /v1/models)"),
    ],
)
async def test_bad_requests(
    sim: Simulator,
    path: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    words: str,
) -> None:
    got, _, payload = await _post(sim, path, body, headers)
    assert got == status
    error = json.loads(payload)["error"]
    assert words in error["message"]
    assert error["type"] == "invalid_request_error"
    assert sim.counters().admitted == 0


async def test_raw_stream_is_server_sent_events(sim: Simulator) -> None:
    body = {**CHAT, "max_tokens": 3, "stream": True, "stream_options": {"include_usage": True}}
    status, headers, payload = await _post(sim, "/v1/chat/completions", body)
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream; charset=utf-8"
    events = payload.decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-2]]
    assert [list(c["choices"][0]["delta"]) if c["choices"] else None for c in chunks] == [
        ["role", "content", "refusal"],
        ["content"],
        ["content"],
        ["content"],
        [],
        None,
    ]
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("fault", ["500", "503"])
async def test_server_errors(sim: Simulator, fault: str) -> None:
    status, _, body = await _post(sim, "/v1/chat/completions", headers={"x-sim-fault": fault})
    assert status == int(fault)
    assert json.loads(body)["error"]["type"] == "server_error"
    counters = sim.counters()
    assert counters.faults == {fault: 1}
    assert counters.admitted == 1  # faults hit admitted requests: the quota was charged


async def test_reset_drops_the_connection(sim: Simulator) -> None:
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await _post(sim, "/v1/chat/completions", headers={"x-sim-fault": "reset"})
    counters = sim.wait_until_idle()
    assert counters.faults == {"reset": 1}
    assert counters.responses == {}


async def test_cut_body_is_incomplete(sim: Simulator) -> None:
    with pytest.raises(aiohttp.ClientPayloadError):
        await _post(sim, "/v1/embeddings", {"model": "e", "input": "x"}, {"x-sim-fault": "cut"})
    assert sim.wait_until_idle().faults == {"cut": 1}


async def test_forced_none_beats_the_dice(sim: Simulator) -> None:
    sim.set_faults(server_error=1.0)
    status, _, _ = await _post(sim, "/v1/chat/completions", headers={"x-sim-fault": "none"})
    assert status == 200
    assert (await _post(sim, "/v1/chat/completions"))[0] == 500


async def test_slow_first_byte_still_answers(sim: Simulator) -> None:
    sim.set_faults(slow_first_byte=1.0, slow_first_byte_ms=1)
    status, _, _ = await _post(sim, "/v1/chat/completions")
    stream_status, _, payload = await _post(sim, "/v1/chat/completions", {**CHAT, "stream": True})
    assert status == stream_status == 200
    assert payload.endswith(b"data: [DONE]\n\n")
    assert sim.counters().faults == {"slow": 2}


async def test_hang_lasts_until_the_client_gives_up(sim: Simulator) -> None:
    timeout = aiohttp.ClientTimeout(total=0.2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(TimeoutError):
            await session.post(
                sim.base_url + "/chat/completions",
                json=CHAT,
                headers={**KEY, "x-sim-fault": "hang"},
            )
    counters = sim.wait_until_idle()
    assert counters.faults == {"hang": 1}
    assert counters.responses == {}
    assert counters.in_flight == 0


async def test_hung_requests_do_not_block_stop(anyfan_sim: Simulator) -> None:
    anyfan_sim.set_faults(hang=1.0)
    failures: list[BaseException] = []

    async def hang() -> None:
        try:
            await _post(anyfan_sim, "/v1/chat/completions")
        except aiohttp.ClientError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as tasks:
        for _ in range(3):
            tasks.start_soon(hang)
        with anyio.fail_after(10):
            while anyfan_sim.counters().in_flight < 3:
                await anyio.sleep(0.001)
        await anyio.to_thread.run_sync(anyfan_sim.stop)
    assert len(failures) == 3
    assert anyfan_sim.counters().faults == {"hang": 3}
    assert not anyfan_sim.running


async def test_control_endpoints(sim: Simulator) -> None:
    assert (await _post(sim, "/v1/chat/completions"))[0] == 200
    status, data = await _get(sim, "/sim/counters")
    assert status == 200
    assert Counters.from_dict(data).responses == {200: 1}
    assert data["cpu_seconds"] >= 0
    status, config = await _get(sim, "/sim/config")
    assert config["limits"] == {"rpm": None, "tpm": None}
    new = {"limits": {"rpm": 5}, "faults": {"server_error": 0.5}}
    status, _, payload = await _post(sim, "/sim/config", new)
    assert status == 200
    assert json.loads(payload)["faults"]["server_error"] == 0.5
    assert sim.limits.rpm == 5
    assert sim.faults.server_error == 0.5
    assert (await _post(sim, "/sim/reset", b""))[0] == 200
    assert sim.counters().requests == 0


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([], "must be a JSON object"),
        ({"speed": {}}, "unknown config sections: speed"),
        ({"limits": 5}, "'limits' must be an object"),
        ({"limits": {"rpm": -1}}, "rpm must be at least 1"),
        ({"latency": {"warp": 1}}, "unexpected keyword argument 'warp'"),
    ],
)
async def test_bad_config_is_refused(sim: Simulator, body: Any, words: str) -> None:
    status, _, payload = await _post(sim, "/sim/config", body)
    assert status == 400
    assert words in json.loads(payload)["error"]["message"]
    assert sim.limits.rpm is None


async def test_unknown_control_is_404(sim: Simulator) -> None:
    status, data = await _get(sim, "/sim/everything")
    assert status == 404
    assert "Invalid URL (GET /sim/everything)" in data["error"]["message"]
    assert sim.counters().requests == 0  # controls are not API traffic


async def test_models_need_a_key(sim: Simulator) -> None:
    status, data = await _get(sim, "/v1/models")
    assert status == 401
    assert "API key" in data["error"]["message"]
