"""Estimating the tokens a request will be charged against a TPM quota (sans-I/O).

OpenAI's limiter charges a request up front, as its prompt tokens plus the
``max_tokens`` it may generate, and it estimates the prompt from its length in
characters. A character-based estimate therefore sees what the quota sees;
exact BPE counts are not needed to stay under it. When `tiktoken` is installed
and its encoding loads, it is used for the prompt instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, Final

#: Characters per token of English text, the provider's own rule of thumb.
CHARS_PER_TOKEN: Final = 4
#: Tokens of framing each chat message costs beyond its content.
TOKENS_PER_MESSAGE: Final = 4
#: Tokens that prime the assistant's reply.
TOKENS_PER_REPLY: Final = 3
#: ``max_tokens`` assumed when a request sets none.
DEFAULT_MAX_TOKENS: Final = 256


def _heuristic(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@cache
def _tokenizer() -> Callable[[str], int] | None:
    try:
        import tiktoken  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        encoding = tiktoken.get_encoding("cl100k_base")
    except Exception:  # offline, or no cached encoding: fall back to the heuristic
        return None
    return lambda text: len(encoding.encode(text, disallowed_special=()))


def count_text(text: str) -> int:
    """Tokens in ``text``: tiktoken if available, else ``ceil(len / 4)``."""
    count = _tokenizer()
    return _heuristic(text) if count is None else count(text)


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    return ""


def prompt_tokens(request: Mapping[str, Any]) -> int:
    """Estimated prompt tokens of a chat, completions or embeddings request body."""
    messages = request.get("messages")
    if isinstance(messages, list):
        total = TOKENS_PER_REPLY
        for message in messages:
            if isinstance(message, Mapping):
                total += TOKENS_PER_MESSAGE + count_text(_content_text(message.get("content")))
        return total
    for key in ("prompt", "input"):
        value = request.get(key)
        if isinstance(value, str):
            return count_text(value)
        if isinstance(value, list):
            if value and all(isinstance(v, int) for v in value):
                return len(value)  # a pre-tokenized prompt
            return sum(
                len(v) if isinstance(v, list) else count_text(_content_text(v)) for v in value
            )
    return 0


def max_output_tokens(request: Mapping[str, Any], default: int = DEFAULT_MAX_TOKENS) -> int:
    """The output budget a request reserves: ``max_completion_tokens`` or ``max_tokens``."""
    if "input" in request and "messages" not in request and "prompt" not in request:
        return 0  # embeddings generate nothing
    for key in ("max_completion_tokens", "max_tokens"):
        value = request.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value * max(1, _int(request.get("n"), 1))
    return default * max(1, _int(request.get("n"), 1))


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def estimate_tokens(
    request: Mapping[str, Any], default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> int:
    """Tokens a request is charged up front: prompt estimate plus its output budget."""
    return prompt_tokens(request) + max_output_tokens(request, default_max_tokens)


def usage_of(result: object) -> Mapping[str, int] | None:
    """The ``usage`` block of a response (an SDK object or a dict), if it has one."""
    usage = result.get("usage") if isinstance(result, Mapping) else getattr(result, "usage", None)
    if usage is None:
        return None
    if isinstance(usage, Mapping):
        return {k: v for k, v in usage.items() if isinstance(v, int)}
    fields = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {f: v for f in fields if isinstance(v := getattr(usage, f, None), int)}


def charged_tokens(
    request: Mapping[str, Any], result: object, default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> int | None:
    """What the provider really charged: the reported prompt tokens plus the output budget.

    The output budget stays charged because the provider reserves it whatever
    is generated; what the estimate may have got wrong is the prompt, and
    ``usage`` tells the truth about that. ``None`` when the response carries
    no usage (a stream without ``include_usage``, say): the estimate stands.
    """
    usage = usage_of(result)
    if usage is None or "prompt_tokens" not in usage:
        return None
    return usage["prompt_tokens"] + max_output_tokens(request, default_max_tokens)
