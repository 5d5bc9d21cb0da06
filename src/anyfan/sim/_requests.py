"""Reading and checking API request bodies (sans-I/O).

Bodies are checked about as strictly as the provider checks them, so that a
client bug shows up as the same 400 it would get in production.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from ._tokens import (
    DEFAULT_CHAT_MAX_TOKENS,
    DEFAULT_COMPLETION_MAX_TOKENS,
    chat_prompt_tokens,
    input_tokens,
)

Endpoint = Literal["chat", "completions", "embeddings"]

#: Largest embedding a request may ask for (``dimensions``).
MAX_DIMENSIONS: Final = 4096
MAX_CHOICES: Final = 128


class BadRequest(Exception):
    """A request body the provider would refuse with a 400."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(slots=True)
class ApiRequest:
    """What the simulator needs to know about one API request."""

    endpoint: Endpoint
    model: str
    prompt_tokens: int
    #: Tokens charged against TPM on arrival.
    charge: int
    #: Most tokens any one reply may have (``None`` for embeddings).
    max_tokens: int | None = None
    #: Replies to write: ``n`` per prompt.
    choices: int = 1
    stream: bool = False
    include_usage: bool = False
    #: Embeddings: the inputs, one vector each.
    inputs: list[Any] | None = None
    dimensions: int | None = None
    base64: bool = False


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional_int(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_int(value):
        raise BadRequest(
            f"Invalid type for '{name}': expected an integer, but got {value!r}.", name
        )
    if not low <= value <= high:
        raise BadRequest(
            f"Invalid '{name}': expected a value between {low} and {high}, "
            f"but got {value} instead.",
            name,
        )
    return int(value)


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter", "model")
    return model


def _stream(body: dict[str, Any]) -> tuple[bool, bool]:
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest(
            f"Invalid type for 'stream': expected a boolean, but got {stream!r}.", "stream"
        )
    options = body.get("stream_options")
    if options is None:
        return bool(stream), False
    if not stream:
        raise BadRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    if not isinstance(options, dict):
        raise BadRequest("Invalid type for 'stream_options': expected an object.", "stream_options")
    return True, options.get("include_usage") is True


def _texts(value: object, name: str, *, allow_empty_text: bool) -> str | list[Any]:
    """Check a prompt/input: a string, or a non-empty list of strings, ints or int lists."""
    if isinstance(value, str):
        if not value and not allow_empty_text:
            raise BadRequest(f"'{name}' cannot be an empty string.", name)
        return value
    if isinstance(value, list) and value:
        if all(isinstance(item, str) for item in value):
            if not allow_empty_text and not all(value):
                raise BadRequest(f"'{name}' cannot contain an empty string.", name)
            return value
        if all(_is_int(item) for item in value):
            return value
        if all(isinstance(item, list) and item and all(map(_is_int, item)) for item in value):
            return value
    raise BadRequest(
        f"Invalid '{name}': expected a string, or a non-empty array of strings, "
        "of integers, or of integer arrays.",
        name,
    )


def parse_chat(body: dict[str, Any]) -> ApiRequest:
    """Check a ``POST /v1/chat/completions`` body."""
    model = _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array.", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequest(
                f"Invalid 'messages[{index}]': expected an object with a 'role'.",
                f"messages[{index}]",
            )
    max_tokens = _optional_int(body, "max_completion_tokens", 1, 1 << 31)
    if max_tokens is None:
        max_tokens = _optional_int(body, "max_tokens", 1, 1 << 31)
    n = _optional_int(body, "n", 1, MAX_CHOICES) or 1
    stream, include_usage = _stream(body)
    prompt = chat_prompt_tokens(messages)
    reserved = DEFAULT_CHAT_MAX_TOKENS if max_tokens is None else max_tokens
    return ApiRequest(
        "chat", model, prompt, prompt + n * reserved, max_tokens, n, stream, include_usage
    )


def parse_completions(body: dict[str, Any]) -> ApiRequest:
    """Check a ``POST /v1/completions`` body."""
    model = _model(body)
    if "prompt" not in body:
        raise BadRequest("'prompt' is a required property.", "prompt")
    prompt = _texts(body["prompt"], "prompt", allow_empty_text=True)
    prompts = len(prompt) if isinstance(prompt, list) and not _is_int(prompt[0]) else 1
    max_tokens = _optional_int(body, "max_tokens", 1, 1 << 31) or DEFAULT_COMPLETION_MAX_TOKENS
    n = _optional_int(body, "n", 1, MAX_CHOICES) or 1
    stream, include_usage = _stream(body)
    tokens = input_tokens(prompt)
    return ApiRequest(
        "completions",
        model,
        tokens,
        tokens + prompts * n * max_tokens,
        max_tokens,
        prompts * n,
        stream,
        include_usage,
    )


def parse_embeddings(body: dict[str, Any]) -> ApiRequest:
    """Check a ``POST /v1/embeddings`` body."""
    model = _model(body)
    if "input" not in body:
        raise BadRequest("'input' is a required property.", "input")
    value = _texts(body["input"], "input", allow_empty_text=False)
    inputs: list[Any] = value if isinstance(value, list) and not _is_int(value[0]) else [value]
    encoding = body.get("encoding_format", "float")
    if encoding not in (None, "float", "base64"):
        raise BadRequest(
            f"Invalid 'encoding_format': expected 'float' or 'base64', but got {encoding!r}.",
            "encoding_format",
        )
    dimensions = _optional_int(body, "dimensions", 1, MAX_DIMENSIONS)
    tokens = input_tokens(value)
    return ApiRequest(
        "embeddings",
        model,
        tokens,
        tokens,
        inputs=inputs,
        dimensions=dimensions,
        base64=encoding == "base64",
    )


PARSERS: Final = {
    "chat": parse_chat,
    "completions": parse_completions,
    "embeddings": parse_embeddings,
}
