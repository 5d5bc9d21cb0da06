"""Async clients bound to one event loop: `blocking_fan(factory=...)` and the error that names it.

A notebook runs its cells in one event loop, while `anyfan.blocking` runs calls
in another. These tests do what such a notebook does: ``await`` a client in
the cell's loop, then fan out from sync code in that same cell.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from openai_helpers import SSE_GENERATOR_WARNING

import anyfan
import anyfan.openai as ao
from anyfan.sim import Simulator

openai = pytest.importorskip("openai")
pytest.importorskip("uvicorn")

pytestmark = pytest.mark.filterwarnings(SSE_GENERATOR_WARNING)

REQUESTS = [
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Q{i}"}], "max_tokens": 3}
    for i in range(6)
]


def test_a_factory_makes_the_client_in_the_fans_own_loop() -> None:
    with Simulator() as sim:

        def make() -> Any:
            return openai.AsyncOpenAI(base_url=sim.base_url, api_key="sk-test")

        async def cell() -> list[str]:
            mine = make()
            await mine.models.list()  # this client now belongs to the cell's loop
            with ao.blocking_fan(factory=make, rpm=6_000, concurrency=4) as fan:

                async def ask(request: dict[str, Any]) -> str:
                    reply = await fan.client.chat.completions.create(**request)
                    return str(reply.choices[0].message.content)

                answers = fan.map(ask, REQUESTS)  # sync, from inside the running loop
                assert fan.client.max_retries == 0
                client = fan.client
            assert client.is_closed()  # the Fan made it, so the Fan closed it
            await mine.close()
            return answers

        answers = asyncio.run(cell())
        counters = sim.wait_until_idle()
    assert len(answers) == len(REQUESTS)
    assert all(answers)
    assert counters.requests == len(REQUESTS) + 1


def test_a_client_of_another_loop_fails_with_a_note_naming_the_cause() -> None:
    with Simulator() as sim:

        async def cell() -> BaseException:
            client = openai.AsyncOpenAI(base_url=sim.base_url, api_key="sk-test", max_retries=0)
            await client.models.list()  # a pooled connection of this loop stays open

            async def ask(request: dict[str, Any]) -> Any:
                return await client.chat.completions.create(**request)

            with pytest.raises(anyfan.FanError) as caught:
                anyfan.blocking.map(ask, REQUESTS[:1], retry=ao.openai_retry(3))
            await client.close()
            return caught.value.exceptions[0]

        error = asyncio.run(cell())
    assert isinstance(error, RuntimeError)
    assert error.__notes__.count(ao.LOOP_NOTE) == 1
    assert "blocking_fan(factory=AsyncOpenAI" in ao.LOOP_NOTE
    assert not ao.is_retryable(error)  # never retried: it cannot heal
    assert error.__notes__.count(ao.LOOP_NOTE) == 1  # the note is added once


def test_explain_loop_error_follows_causes_and_ignores_others() -> None:
    inner = RuntimeError("<Event> is bound to a different event loop")
    outer = ConnectionError("connection failed")
    outer.__cause__ = inner
    assert ao.explain_loop_error(outer)
    assert outer.__notes__ == [ao.LOOP_NOTE]
    assert not ao.explain_loop_error(RuntimeError("something else"))
    assert not ao.explain_loop_error(KeyboardInterrupt())


def test_blocking_fan_checks_client_and_factory() -> None:
    with pytest.raises(TypeError, match="a client or a factory, not both"):
        ao.blocking_fan(object(), factory=object)
    with pytest.raises(TypeError, match="factory must be a callable"):
        ao.blocking_fan(factory=42)  # type: ignore[arg-type]


def test_a_factory_that_fails_closes_the_fan() -> None:
    def broken() -> Any:
        raise OSError("no client today")

    with pytest.raises(OSError, match="no client today"):
        ao.blocking_fan(factory=broken)


def test_a_sync_client_from_a_factory_is_closed_with_the_fan() -> None:
    with ao.blocking_fan(
        factory=lambda: openai.OpenAI(base_url="http://sim.invalid/v1", api_key="k")
    ) as fan:
        client = fan.client
        assert client.max_retries == 0
    assert client.is_closed()


def test_explain_loop_error_stops_on_a_long_chain() -> None:
    head = current = RuntimeError("link")
    for _ in range(12):
        current.__cause__ = RuntimeError("link")
        current = current.__cause__
    current.__cause__ = RuntimeError("bound to a different event loop")
    assert not ao.explain_loop_error(head)  # too deep to be the SDK's wrapping


def test_a_factory_client_without_close_is_left_as_is() -> None:
    made = SimpleNamespace()
    with ao.blocking_fan(factory=lambda: made) as fan:
        assert fan.client is made
    assert fan.closed
