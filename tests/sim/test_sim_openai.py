"""The simulator through the real openai SDK, on asyncio and trio."""

from __future__ import annotations

import base64
import struct
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from anyfan.sim import Simulator

openai = pytest.importorskip("openai")
pytestmark = [
    pytest.mark.anyio,
    # Under trio the SDK leaves its SSE generators unexhausted after `data: [DONE]`
    # (openai/_streaming.py breaks out of them), and trio warns as they are dropped.
    pytest.mark.filterwarnings(
        r"ignore:Async generator '(openai|httpx2?|httpcore2?)\.:ResourceWarning"
    ),
]

MESSAGES = [{"role": "user", "content": "Tell me about fan-outs."}]


def _client(sim: Simulator) -> Any:
    return openai.AsyncOpenAI(base_url=sim.base_url, api_key="sk-test", max_retries=0)


async def test_chat_completion_parses(sim: Simulator) -> None:
    async with _client(sim) as client:
        reply = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=5
        )
    assert reply.object == "chat.completion"
    assert reply.model == "gpt-4o-mini"
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "length"  # natural replies are 10-40 tokens
    assert len(choice.message.content.split()) == 5
    assert reply.usage.completion_tokens == 5
    assert reply.usage.prompt_tokens == 3 + 4 + 6
    counters = sim.counters()
    assert counters.responses == {200: 1}
    assert counters.tokens_charged == 13 + 5
    assert counters.completion_tokens == 5


async def test_same_request_same_body_streamed_or_not(sim: Simulator) -> None:
    async with _client(sim) as client:
        first = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES, n=2
        )
        second = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES, n=2
        )
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            n=2,
            stream=True,
            stream_options={"include_usage": True},
        )
        texts = ["", ""]
        finishes: list[str | None] = [None, None]
        usage = None
        roles = []
        async with stream:
            async for chunk in stream:
                assert chunk.object == "chat.completion.chunk"
                if not chunk.choices:
                    usage = chunk.usage
                    continue
                delta = chunk.choices[0].delta
                index = chunk.choices[0].index
                if delta.role:
                    roles.append(delta.role)
                texts[index] += delta.content or ""
                finishes[index] = chunk.choices[0].finish_reason or finishes[index]
    assert first.http_response.content == second.http_response.content
    reply = first.parse()
    assert texts == [choice.message.content for choice in reply.choices]
    assert finishes == ["stop", "stop"]
    assert roles == ["assistant", "assistant"]
    assert usage is not None
    assert usage.model_dump() == reply.usage.model_dump()
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_stream_without_usage_ends_with_done(sim: Simulator) -> None:
    async with _client(sim) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=3, stream=True
        )
        async with stream:
            chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks)
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, None, None, "length"]


async def test_legacy_completions(sim: Simulator) -> None:
    async with _client(sim) as client:
        reply = await client.completions.create(
            model="gpt-3.5-turbo-instruct", prompt=["one", "two"], max_tokens=4
        )
        stream = await client.completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt=["one", "two"],
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
        )
        streamed: dict[int, str] = {}
        async with stream:
            async for chunk in stream:
                for choice in chunk.choices:
                    streamed[choice.index] = streamed.get(choice.index, "") + choice.text
    assert [c.text for c in reply.choices] == [streamed[0], streamed[1]]
    assert reply.usage.completion_tokens == 8
    assert {c.finish_reason for c in reply.choices} == {"length"}


async def test_embeddings_float_and_base64(sim: Simulator) -> None:
    async with _client(sim) as client:
        floats = await client.embeddings.create(
            model="text-embedding-3-small", input=["alpha", "beta"], encoding_format="float"
        )
        packed = await client.embeddings.create(
            model="text-embedding-3-small",
            input=["alpha", "beta"],
            encoding_format="base64",
        )
        short = await client.embeddings.create(
            model="text-embedding-3-small", input="alpha", dimensions=16
        )
    assert [len(item.embedding) for item in floats.data] == [1536, 1536]
    assert floats.data[0].embedding != floats.data[1].embedding
    assert floats.usage.prompt_tokens == 2 + 1
    raw = packed.data[0].embedding
    values = raw if isinstance(raw, list) else struct.unpack("<1536f", base64.b64decode(raw))
    assert list(values) == floats.data[0].embedding
    assert len(short.data[0].embedding) == 16


async def test_models(sim: Simulator) -> None:
    async with _client(sim) as client:
        listed = await client.models.list()
        model = await client.models.retrieve("gpt-4o")
        with pytest.raises(openai.NotFoundError) as missing:
            await client.models.retrieve("no-such-model")
    assert "gpt-4o-mini" in [m.id for m in listed.data]
    assert model.owned_by == "anyfan-sim"
    assert missing.value.code == "model_not_found"
    assert sim.counters().tokens_charged == 0


async def test_rate_limit_error_as_the_sdk_sees_it(sim: Simulator) -> None:
    sim.set_limits(rpm=1)
    async with _client(sim) as client:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    error = caught.value
    assert error.code == "rate_limit_exceeded"
    assert error.type == "requests"
    assert error.param is None
    assert "on requests per min (RPM): Limit 1, Used 1, Requested 1." in error.message
    headers = error.response.headers
    assert headers["x-ratelimit-limit-requests"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert 55_000 < int(headers["retry-after-ms"]) <= 60_000
    assert int(headers["retry-after"]) == -(-int(headers["retry-after-ms"]) // 1000)
    counters = sim.counters()
    assert (counters.rate_limited, counters.admitted, counters.responses) == (
        1,
        1,
        {200: 1, 429: 1},
    )


async def test_insufficient_quota_as_the_sdk_sees_it(sim: Simulator) -> None:
    sim.set_faults(insufficient_quota=1.0)
    async with _client(sim) as client:
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert caught.value.code == "insufficient_quota"
    assert caught.value.type == "insufficient_quota"
    counters = sim.counters()
    assert counters.faults == {"quota": 1}
    assert counters.admitted == 0
    assert counters.rate_limited == 0


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("500", "InternalServerError"),
        ("503", "InternalServerError"),
        ("reset", "APIConnectionError"),
        ("cut", "APIConnectionError"),
    ],
)
async def test_faults_as_the_sdk_sees_them(sim: Simulator, fault: str, error: str) -> None:
    async with _client(sim) as client:
        with pytest.raises(getattr(openai, error)):
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-sim-fault": fault}
            )
    assert sim.wait_until_idle().faults == {fault: 1}


async def test_stream_cut_mid_way_breaks_the_iteration(sim: Simulator) -> None:
    sim.set_faults(stream_cut=1.0)
    received = []
    async with _client(sim) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=20, stream=True
        )

        async def read_all() -> None:
            async with stream:
                async for chunk in stream:
                    received.append(chunk)

        with pytest.raises(openai.APIConnectionError) as caught:
            await read_all()
    assert "incomplete chunked read" in str(caught.value.__cause__)
    assert 0 < len(received) < 22
    assert sim.wait_until_idle().faults == {"cut": 1}


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_sdk_waits_as_told_and_gets_through(sim: Simulator) -> None:
    sim.set_limits(rpm=60)  # one request per 1-second slice
    async with openai.AsyncOpenAI(
        base_url=sim.base_url, api_key="sk-test", max_retries=3
    ) as client:
        for _ in range(2):
            reply = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert reply.choices[0].message.content
    counters = sim.counters()
    assert counters.responses[200] == 2
    assert counters.rate_limited == counters.responses.get(429, 0) <= 3
    # One per aligned slice; a sliding 1-second window can straddle two slices.
    assert counters.peak_admitted_per_second <= 2


async def test_latency_model_streams_on_deadlines(sim: Simulator) -> None:
    sim.set_latency(ttft_ms=1, per_prompt_token_ms=0.01, itl_ms=0.5, jitter=0.5)
    async with _client(sim) as client:
        plain = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=8
        )
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            max_tokens=8,
            stream=True,
            extra_headers={"x-sim-latency-ms": "2", "x-sim-itl-ms": "1"},
        )
        async with stream:
            text = "".join([c.choices[0].delta.content or "" async for c in stream])
        embedded = await client.embeddings.create(model="text-embedding-3-small", input="x")
    assert text == plain.choices[0].message.content
    assert embedded.data[0].embedding
    assert sim.counters().responses == {200: 3}
