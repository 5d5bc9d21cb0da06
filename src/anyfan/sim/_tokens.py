"""The simulator's token arithmetic: a cheap, documented heuristic (sans-I/O).

The provider's limiter estimates a prompt from its length in characters, so
the simulator does the same and never needs a tokenizer:

- a text is ``ceil(len(text) / 4)`` tokens;
- a chat prompt is 4 tokens per message plus its content's text (the ``text``
  of content parts; images and other parts count nothing), plus 3 tokens that
  prime the reply;
- a completions prompt or embeddings input is the sum over its texts; a list
  of ints is a pre-tokenized text of that many tokens;
- a request is charged against TPM, when it arrives, as its prompt tokens plus
  ``n`` times its ``max_completion_tokens`` or ``max_tokens`` (256 for chat and
  16 for completions when absent; embeddings generate nothing).

These are the same rules as `anyfan.openai`'s estimate without tiktoken, so a
client that uses it is never charged more than it expects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

CHARS_PER_TOKEN: Final = 4
TOKENS_PER_MESSAGE: Final = 4
TOKENS_PER_REPLY: Final = 3
#: What a chat request without ``max_tokens`` reserves.
DEFAULT_CHAT_MAX_TOKENS: Final = 256
#: OpenAI's default ``max_tokens`` for the legacy completions endpoint.
DEFAULT_COMPLETION_MAX_TOKENS: Final = 16


def text_tokens(text: str) -> int:
    """Count the tokens in ``text``: one per 4 characters, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


def content_text(content: object) -> str:
    """Return the text of a chat message's content: a string, or its parts' ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part if isinstance(part, str) else part.get("text", "")
            for part in content
            if isinstance(part, str)
            or (isinstance(part, Mapping) and isinstance(part.get("text"), str))
        )
    return ""


def chat_prompt_tokens(messages: list[object]) -> int:
    """Count the prompt tokens of a chat request's ``messages``."""
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE
        if isinstance(message, Mapping):
            total += text_tokens(content_text(message.get("content")))
    return total


def input_tokens(value: str | list[Any]) -> int:
    """Count the tokens of a completions ``prompt`` or an embeddings ``input``.

    ``value`` is a text, a list of texts, a pre-tokenized text (a list of ints)
    or a list of pre-tokenized texts.
    """
    if isinstance(value, str):
        return text_tokens(value)
    total = 0
    for item in value:
        if isinstance(item, str):
            total += text_tokens(item)
        elif isinstance(item, list):
            total += len(item)
        else:
            total += 1  # one token id of a pre-tokenized text
    return total
