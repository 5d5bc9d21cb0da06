"""A trio program whose tasks each make their own calls, under one shared quota."""

from __future__ import annotations

from typing import Any

import openai
import trio

import anyfan.openai


async def main(
    questions: list[str],
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    rpm: int = 500,
    workers: int = 50,
) -> dict[str, str]:
    answers: dict[str, str] = {}
    async with openai.AsyncOpenAI(base_url=base_url, api_key=api_key) as client:
        chat = anyfan.openai.fan(client, rpm=rpm, concurrency=32, timeout=60)

        @chat.wrap  # every call of ask() waits its turn under the Fan's limits
        async def ask(question: str) -> str:
            reply = await chat.client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": question}],
                max_tokens=16,
            )
            return reply.choices[0].message.content or ""

        send, receive = trio.open_memory_channel[str](0)

        async def worker(inbox: Any) -> None:
            async with inbox:
                async for question in inbox:
                    answers[question] = await ask(question)

        async with trio.open_nursery() as nursery:
            for _ in range(workers):
                nursery.start_soon(worker, receive.clone())
            await receive.aclose()
            async with send:
                for question in questions:
                    await send.send(question)
    return answers


if __name__ == "__main__":
    print(trio.run(main, ["What is a fan-out?"]))
