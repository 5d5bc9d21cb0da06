"""A FastAPI app whose handlers share one OpenAI quota through `anyfan.openai.fan`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import openai
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

import anyfan.openai


class Question(BaseModel):
    text: str


def create_app(
    *, base_url: str | None = None, api_key: str | None = None, rpm: int = 500, tpm: int = 200_000
) -> FastAPI:
    # One client and one Fan per process: every request shares its limits.
    client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key)
    chat = anyfan.openai.fan(client, rpm=rpm, tpm=tpm, concurrency=64, timeout=60)

    async def create(request: dict[str, Any]) -> Any:
        return await chat.client.chat.completions.create(**request)  # retries are anyfan's

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await client.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/ask")
    async def ask(question: Question) -> dict[str, str]:
        request = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": question.text}],
            "max_tokens": 16,
        }
        try:
            reply = await chat.call(create, request)  # waits its turn under RPM/TPM
        except openai.APIError as error:  # the SDK's own exception, after anyfan's retries
            raise HTTPException(502, detail=type(error).__name__) from error
        return {"answer": reply.choices[0].message.content or ""}

    return app
