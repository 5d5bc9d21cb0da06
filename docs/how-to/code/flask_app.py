"""A Flask app whose sync views share one OpenAI quota through `anyfan.openai.blocking_fan`."""

from __future__ import annotations

from typing import Any

import openai
from flask import Flask, jsonify, request

import anyfan.openai


def create_app(
    *, base_url: str | None = None, api_key: str | None = None, rpm: int = 500, tpm: int = 200_000
) -> Flask:
    # One client and one Fan per process: every request thread shares its limits.
    client = openai.OpenAI(base_url=base_url, api_key=api_key)
    chat = anyfan.openai.blocking_fan(client, rpm=rpm, tpm=tpm, concurrency=64, timeout=60)

    def create(body: dict[str, Any]) -> Any:
        return chat.client.chat.completions.create(**body)  # retries are anyfan's

    app = Flask(__name__)

    @app.post("/ask")
    def ask() -> Any:
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": request.get_json()["text"]}],
            "max_tokens": 16,
        }
        try:
            reply = chat.call(create, body)  # blocks this thread until its turn and reply
        except openai.APIError as error:  # the SDK's own exception, after anyfan's retries
            return jsonify(detail=type(error).__name__), 502
        return jsonify(answer=reply.choices[0].message.content or "")

    app.extensions["anyfan"] = chat  # so whoever stops the app can close the Fan
    return app
