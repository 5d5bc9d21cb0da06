"""End to end: the real openai SDK, anyfan.openai and the simulator, with limits and faults.

Every request must end in exactly one outcome, every healable failure must
heal, no limit that matches the server's may ever draw a 429, and the
server's counters must agree with the Fan's stats attempt for attempt.

The limits bind in `test_limits_that_bind_draw_no_429` (and its twin from
threads), at the server's very own limits: a client whose event loop is busy
sends each admitted request late by a varying amount, and the limiter keeps
its slice guard as wide as the delays it measures (issue 13), so that the
server, counting in fixed 1-s slices, never sees a slice's share plus one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import pytest
from openai_helpers import SSE_GENERATOR_WARNING

import anyfan
import anyfan.openai as ao
from anyfan.sim import Counters, Faults, Latency, ServerLimits, Simulator

openai = pytest.importorskip("openai")
pytest.importorskip("uvicorn")

pytestmark = pytest.mark.filterwarnings(SSE_GENERATOR_WARNING)

#: Server and client limits for the runs with faults: 1,000 requests and 20,000 tokens
#: (about 690 requests) a second, in 1-s slices, above what the client reaches here.
#: Where limits bind, see `test_limits_that_bind_draw_no_429`.
RPM = 60_000
TPM = 1_200_000
#: 5% of requests fail in every healable way there is, and 1% are slow to start.
FAULTS = Faults(
    server_error=0.01,
    unavailable=0.01,
    reset=0.01,
    stream_cut=0.01,
    slow_first_byte=0.01,
    slow_first_byte_ms=50,
)
LATENCY = Latency(ttft_ms=5, per_prompt_token_ms=0.05, itl_ms=0.25, jitter=0.2)
#: Faults that fail an attempt (a slow first byte only delays it).
FAILING = ("500", "503", "reset", "cut")
#: A safety net: no attempt should come near it, but the suite stays bounded.
TIMEOUT = 30.0
KEY = "sk-test"


def requests(n: int) -> list[dict[str, Any]]:
    """``n`` chat requests in pairs with one body, the second of each pair streamed."""
    out = []
    for i in range(n):
        pair = i // 2
        request: dict[str, Any] = {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": f"Question {pair}: " + "why? " * (pair % 9)},
            ],
            "max_tokens": 3 + pair % 6,
        }
        if i % 2:
            request["stream"] = True
            request["stream_options"] = {"include_usage": True}
        out.append(request)
    return out


def simulator(**options: Any) -> Simulator:
    options.setdefault("limits", ServerLimits(rpm=RPM, tpm=TPM))
    options.setdefault("faults", FAULTS)
    options.setdefault("latency", LATENCY)
    return Simulator(seed=5, **options)


async def ask_async(client: Any, request: dict[str, Any]) -> dict[str, Any]:
    """One call as a user writes it: the whole stream is read inside the call."""
    if not request.get("stream"):
        reply = await client.chat.completions.create(**request)
        return {"id": reply.id, "text": reply.choices[0].message.content, "usage": reply.usage}
    stream = await client.chat.completions.create(**request)
    ident, usage = None, None
    parts: list[str] = []
    async with stream:
        async for chunk in stream:
            ident = chunk.id
            usage = chunk.usage or usage
            parts.extend(choice.delta.content or "" for choice in chunk.choices)
    return {"id": ident, "text": "".join(parts), "usage": usage}


def asker(client: Any) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
    """`ask_async` bound to ``client``: an async function, so it runs on the loop."""

    async def ask(request: dict[str, Any]) -> dict[str, Any]:
        return await ask_async(client, request)

    return ask


def ask_sync(client: Any, request: dict[str, Any]) -> dict[str, Any]:
    """`ask_async` for the sync client, run in a worker thread."""
    if not request.get("stream"):
        reply = client.chat.completions.create(**request)
        return {"id": reply.id, "text": reply.choices[0].message.content, "usage": reply.usage}
    ident, usage = None, None
    parts: list[str] = []
    with client.chat.completions.create(**request) as stream:
        for chunk in stream:
            ident = chunk.id
            usage = chunk.usage or usage
            parts.extend(choice.delta.content or "" for choice in chunk.choices)
    return {"id": ident, "text": "".join(parts), "usage": usage}


def check_run(
    asked: Sequence[dict[str, Any]],
    outcomes: Iterable[anyfan.Outcome[dict[str, Any], dict[str, Any]]],
    stats: anyfan.FanStats,
    counters: Counters,
) -> None:
    """Everything the server saw must match the client's outcomes and stats exactly."""
    n = len(asked)
    done = list(outcomes)
    # Exactly one outcome per request: nothing lost, nothing duplicated.
    assert sorted(o.index for o in done) == list(range(n))
    # Every failure healed.
    failed = [(o.index, repr(o.error)) for o in done if not o.ok]
    assert failed == []
    values = {o.index: o.value for o in done if o.value is not None}
    for i in range(0, n - 1, 2):
        plain, streamed = values[i], values[i + 1]
        # Same body, same reply, streamed or not: no attempt's reply reached another request.
        assert plain["id"] == streamed["id"]
        assert plain["text"] == streamed["text"] != ""
        assert plain["usage"].prompt_tokens == ao.prompt_tokens(asked[i])
    assert len({value["id"] for value in values.values()}) == (n + 1) // 2

    # No 429 when the client's limits are the server's.
    assert counters.rate_limited == 0
    assert 429 not in counters.responses
    assert counters.admitted == counters.requests

    # The server's counters agree with the Fan's stats.
    faults = counters.faults
    failures = sum(faults.get(name, 0) for name in FAILING)
    assert set(faults) <= {*FAILING, "slow"}
    assert stats.started == counters.requests == n + failures
    assert sum(o.attempts for o in done) == stats.started
    assert (stats.succeeded, stats.failed, stats.retried) == (n, 0, failures)
    assert (stats.cancelled, stats.in_flight) == (0, 0)
    assert counters.responses.get(500, 0) == faults.get("500", 0)
    assert counters.responses.get(503, 0) == faults.get("503", 0)
    # A cut body started as a 200; a reset sent no response at all.
    assert counters.responses.get(200, 0) == n + faults.get("cut", 0)
    # The estimate of every attempt is what the server charged for it.
    expected = sum(ao.estimate_tokens(o.item) * o.attempts for o in done)
    assert counters.tokens_charged == expected


async def fan_out(
    sim: Simulator, asked: list[dict[str, Any]], **options: Any
) -> tuple[list[Any], anyfan.FanStats]:
    async with openai.AsyncOpenAI(base_url=sim.base_url, api_key=KEY) as client:
        fan = ao.fan(client, rpm=RPM, tpm=TPM, concurrency=32, timeout=TIMEOUT, **options)
        assert fan.client.max_retries == 0
        async with fan.stream(asker(fan.client), asked) as outcomes:
            done = [outcome async for outcome in outcomes]
        return done, fan.stats


@pytest.mark.anyio
async def test_fan_out_heals_every_fault_without_a_429() -> None:
    asked = requests(200)
    with simulator() as sim:
        done, stats = await fan_out(sim, asked)
        counters = sim.wait_until_idle()
    assert sum(counters.faults.get(name, 0) for name in FAILING) > 0
    check_run(asked, done, stats, counters)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", [pytest.param(("asyncio", {}), id="asyncio")])
async def test_two_thousand_requests() -> None:
    asked = requests(2_000)
    with simulator() as sim:
        done, stats = await fan_out(sim, asked)
        counters = sim.wait_until_idle()
    assert sum(counters.faults.get(name, 0) for name in FAILING) >= 40
    check_run(asked, done, stats, counters)


def test_blocking_facade_with_the_sync_client() -> None:
    asked = requests(200)
    with simulator() as sim:
        client = openai.OpenAI(base_url=sim.base_url, api_key=KEY)
        with ao.blocking_fan(client, rpm=RPM, tpm=TPM, concurrency=32, timeout=TIMEOUT) as fan:
            done = list(fan.stream(lambda request: ask_sync(fan.client, request), asked))
            stats = fan.stats
        client.close()
        counters = sim.wait_until_idle()
    check_run(asked, done, stats, counters)


def test_blocking_map_with_the_sync_client() -> None:
    asked = requests(60)
    with simulator() as sim:
        client = openai.OpenAI(base_url=sim.base_url, api_key=KEY, max_retries=0)
        limits = [rate for rate in ao.request_limits(rpm=RPM, tpm=TPM) if rate is not None]
        results = anyfan.blocking.map(
            lambda request: ask_sync(client, request),
            asked,
            concurrency=16,
            limits=limits,
            retry=ao.openai_retry(),
            timeout=TIMEOUT,
        )
        client.close()
        counters = sim.wait_until_idle()
    assert [r["text"] for r in results[::2]] == [r["text"] for r in results[1::2]]
    assert counters.rate_limited == 0
    failures = sum(counters.faults.get(name, 0) for name in FAILING)
    assert counters.requests == len(asked) + failures


# -- the limiter binding ------------------------------------------------------------------

#: The binding limits, the same on both sides: 50 requests a second, and tokens for
#: about 41. The client could go far faster, so both bind; one that ignored them
#: would send all 120 requests in a few slices, past 50 in one.
BINDING_RPM, BINDING_TPM = 3_000, 72_000
SERVER_BINDING = ServerLimits(rpm=BINDING_RPM, tpm=BINDING_TPM)


@pytest.mark.anyio
async def test_limits_that_bind_draw_no_429() -> None:
    asked = requests(120)
    with simulator(limits=SERVER_BINDING, faults=Faults()) as sim:
        async with openai.AsyncOpenAI(base_url=sim.base_url, api_key=KEY) as client:
            fan = ao.fan(client, rpm=BINDING_RPM, tpm=BINDING_TPM, concurrency=64, timeout=TIMEOUT)
            results = await fan.map(asker(fan.client), asked)
            stats = fan.stats
        counters = sim.wait_until_idle()
    assert len(results) == len(asked)
    assert counters.rate_limited == 0
    assert counters.requests == stats.started == len(asked)
    assert counters.tokens_charged == sum(map(ao.estimate_tokens, asked))


def test_limits_that_bind_draw_no_429_from_threads() -> None:
    asked = requests(80)
    with simulator(limits=SERVER_BINDING, faults=Faults()) as sim:
        client = openai.OpenAI(base_url=sim.base_url, api_key=KEY)
        with ao.blocking_fan(
            client, rpm=BINDING_RPM, tpm=BINDING_TPM, concurrency=32, timeout=TIMEOUT
        ) as fan:
            results = fan.map(lambda request: ask_sync(fan.client, request), asked)
        client.close()
        counters = sim.wait_until_idle()
    assert len(results) == len(asked)
    assert counters.rate_limited == 0
    assert counters.requests == len(asked)
    assert counters.tokens_charged == sum(map(ao.estimate_tokens, asked))


# -- what must not be retried ------------------------------------------------------------------


@pytest.mark.anyio
async def test_insufficient_quota_stops_at_once_without_retrying() -> None:
    concurrency = 8
    with simulator(faults=Faults(insufficient_quota=1.0)) as sim:
        async with openai.AsyncOpenAI(base_url=sim.base_url, api_key=KEY) as client:
            fan = ao.fan(client, rpm=RPM, tpm=TPM, concurrency=concurrency, timeout=TIMEOUT)
            with pytest.raises(anyfan.FanError) as caught:
                await fan.map(asker(fan.client), requests(500))
            stats = fan.stats
        counters = sim.wait_until_idle()
    error = caught.value.exceptions[0]
    assert isinstance(error, openai.RateLimitError)
    assert error.code == "insufficient_quota"
    assert "exceeded your current quota" in str(error)
    assert not ao.classify_exception(error).retry
    # Only the calls already in flight when the first answer came back ever left.
    assert 1 <= counters.requests <= stats.started <= concurrency
    # A request cancelled while the server read it is received, but never answered.
    assert set(counters.faults) == {"quota"}
    assert counters.faults["quota"] == counters.responses[429] <= counters.requests
    assert stats.retried == 0
    assert stats.paused == 0.0


@pytest.mark.anyio
async def test_insufficient_quota_in_a_collecting_run_is_never_retried() -> None:
    asked = requests(200)
    with simulator(faults=Faults(insufficient_quota=0.05)) as sim:
        async with openai.AsyncOpenAI(base_url=sim.base_url, api_key=KEY) as client:
            fan = ao.fan(client, rpm=RPM, tpm=TPM, concurrency=32, timeout=TIMEOUT)
            with pytest.raises(anyfan.FanError) as caught:
                await fan.map(asker(fan.client), asked, errors="collect")
            stats = fan.stats
        counters = sim.wait_until_idle()
    failures = caught.value.failures
    assert len(failures) == counters.faults["quota"] > 0
    assert all(isinstance(exc, openai.RateLimitError) for _, exc in failures)
    assert counters.requests == stats.started == len(asked)
    assert stats.retried == 0


# -- what the server asks for -------------------------------------------------------------------


@pytest.mark.anyio
async def test_server_429s_pause_the_fan_for_their_retry_after() -> None:
    # The client believes in ten times the server's limit: the server answers with
    # 429s carrying retry-after-ms, the whole Fan pauses that long, and all heal.
    asked = requests(30)
    with simulator(limits=ServerLimits(rpm=1_200), faults=Faults()) as sim:
        async with openai.AsyncOpenAI(base_url=sim.base_url, api_key=KEY) as client:
            fan = ao.fan(
                client,
                rpm=12_000,
                concurrency=16,
                timeout=TIMEOUT,
                retry=ao.openai_retry(10, budget=None),
            )
            results = await fan.map(asker(fan.client), asked)
            stats = fan.stats
        counters = sim.wait_until_idle()
    assert len(results) == len(asked)
    assert counters.rate_limited > 0
    assert stats.retried == counters.rate_limited
    assert counters.requests == stats.started == len(asked) + counters.rate_limited
    assert stats.paused > 0


@pytest.mark.anyio
async def test_hung_requests_time_out_and_heal() -> None:
    asked = requests(40)
    with simulator(faults=Faults(hang=0.1)) as sim:
        async with openai.AsyncOpenAI(base_url=sim.base_url, api_key=KEY) as client:
            fan = ao.fan(client, rpm=RPM, tpm=TPM, concurrency=16, timeout=1.0)
            results = await fan.map(asker(fan.client), asked)
            stats = fan.stats
        counters = sim.wait_until_idle()
    assert [r["text"] for r in results[::2]] == [r["text"] for r in results[1::2]]
    assert counters.faults["hang"] > 0
    assert stats.retried == counters.faults["hang"]
    assert counters.requests == stats.started


@pytest.mark.anyio
async def test_sdk_retries_off_means_one_request_per_attempt() -> None:
    # Without anyfan.openai the SDK would retry the 500 itself, twice, unseen by anyfan.
    with simulator(limits=ServerLimits(), faults=Faults(server_error=1.0)) as sim:
        async with openai.AsyncOpenAI(base_url=sim.base_url, api_key=KEY) as client:
            fan = ao.fan(client, retry=ao.openai_retry(3, backoff=0.01, budget=None))
            with pytest.raises(anyfan.FanError):
                await fan.map(asker(fan.client), requests(1))
            stats = fan.stats
        counters = sim.wait_until_idle()
    assert counters.requests == stats.started == 3
    assert stats.retried == 2


# -- what costs nothing -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_request_rejected_with_a_400_gives_its_tokens_back() -> None:
    # A request the server refuses (no messages) while reserving nearly a minute's
    # tokens: settled at no cost, the next request fits at once instead of waiting
    # about 50 s for that reservation to drain.
    rejected = {"model": "gpt-4o-mini", "messages": [], "max_tokens": 5_000}
    fine = requests(2)[0]
    with simulator(limits=ServerLimits(), faults=Faults()) as sim:
        async with openai.AsyncOpenAI(base_url=sim.base_url, api_key=KEY) as client:
            fan = ao.fan(client, tpm=6_000, concurrency=1, timeout=TIMEOUT)
            (tokens,) = fan.limits
            with pytest.raises(anyfan.FanError) as caught:
                await fan.map(asker(fan.client), [rejected])
            assert isinstance(caught.value.exceptions[0], openai.BadRequestError)
            assert ao.rejected_without_work(caught.value.exceptions[0])
            assert tokens.has_capacity(ao.estimate_tokens(fine))
            results = await fan.map(asker(fan.client), [fine])
            stats = fan.stats
        counters = sim.wait_until_idle()
    assert results[0]["text"]
    assert counters.responses == {400: 1, 200: 1}
    assert stats.retried == 0
