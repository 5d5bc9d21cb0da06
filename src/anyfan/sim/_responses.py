"""Response bodies in the provider's exact shapes (sans-I/O).

Every builder returns the bytes to send. Shapes follow OpenAI's API reference
field for field, so the openai SDK parses them into its typed objects.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from ._durations import ceil_ms, format_ms

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._limiter import Admission

#: ``created`` of every response: a fixed time, so a body depends on its request alone.
CREATED: Final = 1_735_689_600
FINGERPRINT: Final = "fp_anyfansim"
ORGANIZATION: Final = "org-anyfansim"
_RATE_LIMIT_LINK: Final = "Visit https://platform.openai.com/account/rate-limits to learn more."

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def encode(payload: Any) -> bytes:
    """Encode ``payload`` as compact JSON bytes."""
    return _dumps(payload).encode()


def error(message: str, kind: str, param: str | None = None, code: str | None = None) -> bytes:
    """Return OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return encode({"error": {"message": message, "type": kind, "param": param, "code": code}})


def rate_limit_error(model: str, decision: Admission) -> bytes:
    """Return the 429 body for a request the limiter refused."""
    unit = "requests per min (RPM)" if decision.kind == "requests" else "tokens per min (TPM)"
    where = f"for {model} in organization {ORGANIZATION} on {unit}"
    if decision.wait == float("inf"):
        message = (
            f"Request too large {where}: Limit {decision.limit}, Requested {decision.cost}. "
            f"The input or output tokens must be reduced in order to run successfully. "
            f"{_RATE_LIMIT_LINK}"
        )
    else:
        message = (
            f"Rate limit reached {where}: Limit {decision.limit}, Used {decision.used}, "
            f"Requested {decision.cost}. Please try again in "
            f"{format_ms(ceil_ms(decision.wait))}. {_RATE_LIMIT_LINK}"
        )
    return error(message, decision.kind or "requests", None, "rate_limit_exceeded")


INSUFFICIENT_QUOTA: Final = error(
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors.",
    "insufficient_quota",
    None,
    "insufficient_quota",
)
SERVER_ERROR: Final = error(
    "The server had an error while processing your request. Sorry about that!", "server_error"
)
UNAVAILABLE: Final = error(
    "The engine is currently overloaded, please try again later.", "server_error"
)
MISSING_KEY: Final = error(
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
    "invalid_request_error",
)
BAD_JSON: Final = error(
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON.)",
    "invalid_request_error",
)


_USAGE: Final = (
    '{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{},'
    '"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},'
    '"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,'
    '"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}'
)
_CHAT_CHOICE: Final = (
    '{{"index":{},"message":{{"role":"assistant","content":"{}","refusal":null,'
    '"annotations":[]}},"logprobs":null,"finish_reason":"{}"}}'
)
_TEXT_CHOICE: Final = '{{"text":"{}","index":{},"logprobs":null,"finish_reason":"{}"}}'


def usage(prompt_tokens: int, completion_tokens: int) -> str:
    """Return a chat/completions ``usage`` object, as JSON text."""
    return _USAGE.format(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)


# Whole bodies are spliced from templates too: `json.dumps` of the nested
# dicts was the largest single cost of a request. Reply texts are the fake
# vocabulary's plain ASCII words and need no escaping; the model is escaped.


def chat_completion(
    rid: str,
    model: str,
    replies: Sequence[tuple[str, str]],
    prompt_tokens: int,
    completion_tokens: int,
) -> bytes:
    """Return a ``chat.completion`` body; ``replies`` holds (text, finish_reason) per choice."""
    choices = ",".join(
        _CHAT_CHOICE.format(index, text, finish) for index, (text, finish) in enumerate(replies)
    )
    return (
        f'{{"id":"chatcmpl-{rid}","object":"chat.completion","created":{CREATED},'
        f'"model":{_dumps(model)},"choices":[{choices}],'
        f'"usage":{usage(prompt_tokens, completion_tokens)},'
        f'"service_tier":"default","system_fingerprint":"{FINGERPRINT}"}}'
    ).encode()


def text_completion(
    rid: str,
    model: str,
    replies: Sequence[tuple[str, str]],
    prompt_tokens: int,
    completion_tokens: int,
) -> bytes:
    """Return a legacy ``text_completion`` body."""
    choices = ",".join(
        _TEXT_CHOICE.format(text, index, finish) for index, (text, finish) in enumerate(replies)
    )
    return (
        f'{{"id":"cmpl-{rid}","object":"text_completion","created":{CREATED},'
        f'"model":{_dumps(model)},"choices":[{choices}],'
        f'"usage":{usage(prompt_tokens, completion_tokens)},'
        f'"system_fingerprint":"{FINGERPRINT}"}}'
    ).encode()


def embeddings(model: str, vectors: Sequence[list[float] | str], prompt_tokens: int) -> bytes:
    """Return a ``list`` of embeddings (floats, or base64 strings)."""
    return encode(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": index, "embedding": vector}
                for index, vector in enumerate(vectors)
            ],
            "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }
    )


def model_entry(model: str) -> dict[str, Any]:
    """Return one ``model`` object."""
    return {"id": model, "object": "model", "created": CREATED, "owned_by": "anyfan-sim"}


def model_list(models: Sequence[str]) -> bytes:
    """Return the ``GET /v1/models`` body."""
    return encode({"object": "list", "data": [model_entry(model) for model in models]})


DONE: Final = b"data: [DONE]\n\n"


class ChunkWriter:
    """Server-sent events of one streamed reply, in the provider's chunk shapes.

    Chunks are spliced from prebuilt halves: streaming writes one event per
    token, and building each with `json.dumps` would cost several times more.
    Tokens are the fake vocabulary's plain ASCII words, so they need no escaping.
    """

    __slots__ = ("_chat", "_head", "_tail")

    def __init__(self, *, chat: bool, rid: str, model: str, include_usage: bool) -> None:
        self._chat = chat
        if chat:
            head = (
                f'{{"id":"chatcmpl-{rid}","object":"chat.completion.chunk","created":{CREATED},'
                f'"model":{_dumps(model)},"service_tier":"default",'
                f'"system_fingerprint":"{FINGERPRINT}","choices":['
            )
        else:
            head = (
                f'{{"id":"cmpl-{rid}","object":"text_completion","created":{CREATED},'
                f'"model":{_dumps(model)},"system_fingerprint":"{FINGERPRINT}","choices":['
            )
        self._head = b"data: " + head.encode()
        self._tail = (b'],"usage":null}' if include_usage else b"]}") + b"\n\n"

    def _event(self, choice: str) -> bytes:
        return self._head + choice.encode() + self._tail

    def start(self, index: int) -> bytes:
        """Return the chunk opening a chat choice (role, empty content); none for completions."""
        if not self._chat:
            return b""
        return self._event(
            f'{{"index":{index},"delta":{{"role":"assistant","content":"","refusal":null}},'
            '"logprobs":null,"finish_reason":null}'
        )

    def token(self, index: int, token: str) -> bytes:
        """Return the chunk carrying one token of choice ``index``."""
        if self._chat:
            choice = (
                f'{{"index":{index},"delta":{{"content":"{token}"}},'
                '"logprobs":null,"finish_reason":null}'
            )
        else:
            choice = f'{{"text":"{token}","index":{index},"logprobs":null,"finish_reason":null}}'
        return self._event(choice)

    def finish(self, index: int, reason: str) -> bytes:
        """Return the chunk closing choice ``index`` with its finish reason."""
        if self._chat:
            choice = f'{{"index":{index},"delta":{{}},"logprobs":null,"finish_reason":"{reason}"}}'
        else:
            choice = f'{{"text":"","index":{index},"logprobs":null,"finish_reason":"{reason}"}}'
        return self._event(choice)

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        """Return the last chunk: ``usage`` and no choices (``stream_options.include_usage``)."""
        return self._head + f'],"usage":{usage(prompt_tokens, completion_tokens)}}}\n\n'.encode()
