"""Estimating the tokens a request is charged against a TPM quota (sans-I/O).

OpenAI's limiter charges a request up front, as its prompt plus the output it
may generate (``max_tokens`` times ``n``), and it estimates the prompt from its
length in characters. The estimate here does the same, with these rules
(`anyfan.sim` charges by the very same ones):

- a text is ``ceil(len(text) / 4)`` tokens;
- a chat prompt is 4 tokens per message plus its content's text (the
  ``text`` of content parts; images and other parts count nothing), plus 3
  tokens that prime the reply;
- a completions ``prompt`` or embeddings ``input`` is the sum over its texts;
  a list of ints is a pre-tokenized text of that many tokens;
- the output budget is ``max_completion_tokens`` or ``max_tokens`` times
  ``n`` (and times the number of prompts of a completions request); when a
  request sets neither, 256 for chat (``default_max_tokens``) and 16, the
  API's own default, for completions. Embeddings generate nothing.
  A Responses API request (``input`` with ``max_output_tokens``) reserves its
  ``max_output_tokens``.

When `tiktoken` is installed and its encoding loads, a text counts as the
larger of its BPE tokens and the character estimate, so that neither a
terse language nor a dense one is under-charged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, Final

from ._classify import rejected_without_work

#: Characters per token of English text, the provider's own rule of thumb.
CHARS_PER_TOKEN: Final = 4
#: Tokens of framing each chat message costs beyond its content.
TOKENS_PER_MESSAGE: Final = 4
#: Tokens that prime the assistant's reply.
TOKENS_PER_REPLY: Final = 3
#: Output tokens assumed for a chat request that sets no ``max_tokens``.
DEFAULT_MAX_TOKENS: Final = 256
#: The completions endpoint's own default ``max_tokens``.
DEFAULT_COMPLETION_MAX_TOKENS: Final = 16
#: The tiktoken encoding used when tiktoken is installed.
ENCODING: Final = "cl100k_base"


@cache
def _tokenizer() -> Callable[[str], int] | None:
    """The tiktoken counter, or ``None`` when it is missing or its encoding cannot load."""
    try:
        import tiktoken  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        encoding = tiktoken.get_encoding(ENCODING)
    except Exception:  # offline with no cached encoding file, say: use the heuristic
        return None

    def count(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    return count


def warm_up() -> bool:
    """Load tiktoken's encoding now, if tiktoken is installed; return whether it is used.

    Loading may read or even download a file, so it is better done once, up
    front, than by the first request inside an event loop.
    """
    return _tokenizer() is not None


def count_text(text: str) -> int:
    """Tokens charged for ``text``: ``ceil(len / 4)``, or tiktoken's count if larger."""
    estimate = -(-len(text) // CHARS_PER_TOKEN)
    count = _tokenizer()
    return estimate if count is None else max(estimate, count(text))


#: Whether each type seen by `_field` is a `Mapping`: asking the ABC costs a Python call
#: per object, and every response (an SDK model, not a mapping) is asked twice. Bounded,
#: so that classes made on the fly cannot pile up in it (past 256 kinds, types are asked).
_IS_MAPPING: dict[type, bool] = {dict: True}
_KINDS_KEPT: Final = 256


def _field(obj: object, name: str) -> object:
    """``obj[name]`` for a mapping, else ``obj.name`` (SDK objects), else ``None``."""
    kind = type(obj)
    mapping = _IS_MAPPING.get(kind)
    if mapping is None:
        mapping = isinstance(obj, Mapping)
        if len(_IS_MAPPING) < _KINDS_KEPT:
            _IS_MAPPING[kind] = mapping
    if mapping:
        return obj.get(name)  # type: ignore[attr-defined]
    return getattr(obj, name, None)


def content_text(content: object) -> str:
    """The text of a message's content: a string, or the ``text`` of its parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):
        parts = []
        for part in content:
            text = part if isinstance(part, str) else _field(part, "text")
            if isinstance(text, str):
                parts.append(text)
        return "".join(parts)
    return ""


def _input_tokens(value: object) -> int:
    """Tokens of a ``prompt`` or ``input``: texts, token lists, or message-like items."""
    if isinstance(value, str):
        return count_text(value)
    if not isinstance(value, list | tuple):
        return 0
    total = 0
    for item in value:
        if isinstance(item, str):
            total += count_text(item)
        elif isinstance(item, list | tuple):
            total += len(item)  # a pre-tokenized text
        elif isinstance(item, int):
            total += 1  # one token of a pre-tokenized text
        else:
            total += count_text(content_text(_field(item, "content")))
    return total


def prompt_tokens(request: Mapping[str, Any]) -> int:
    """Estimated prompt tokens of a chat, completions, embeddings or responses request."""
    messages = request.get("messages")
    if isinstance(messages, list | tuple):
        total = TOKENS_PER_REPLY
        for message in messages:
            # Plain dicts holding a string, the usual request, skip the general lookups.
            content = message.get("content") if type(message) is dict else None
            if type(content) is not str:
                content = content_text(_field(message, "content"))
            total += TOKENS_PER_MESSAGE + count_text(content)
        return total
    total = 0
    instructions = request.get("instructions")
    if isinstance(instructions, str):
        total += count_text(instructions)
    for key in ("prompt", "input"):
        if key in request:
            return total + _input_tokens(request[key])
    return total


def _count(value: object) -> int | None:
    # `type() is int` leaves out bool, and is the cheapest test.
    return value if type(value) is int and value >= 0 else None


def max_output_tokens(request: Mapping[str, Any], default: int = DEFAULT_MAX_TOKENS) -> int:
    """The output budget a request reserves (see the module's rules)."""
    get = request.get
    # `_count`, inlined where the answer usually is: this runs twice a call.
    budget: int | None = get("max_output_tokens")
    if type(budget) is int and budget >= 0:
        return budget
    if "messages" in request:
        fallback = default
    elif "prompt" in request:
        fallback = DEFAULT_COMPLETION_MAX_TOKENS
    elif "input" in request:
        return 0  # embeddings generate nothing
    else:
        fallback = default
    budget = get("max_completion_tokens")
    if type(budget) is not int or budget < 0:
        budget = get("max_tokens")
        if type(budget) is not int or budget < 0:
            budget = fallback
    n = get("n")
    if n is not None:
        budget *= _count(n) or 1
    prompt = get("prompt")
    return budget if prompt is None else budget * _prompts(prompt)


def _prompts(prompt: object) -> int:
    """How many prompts a completions request holds: each gets its own completions."""
    if isinstance(prompt, list | tuple) and prompt and not isinstance(prompt[0], int):
        return len(prompt)
    return 1


def estimate_tokens(
    request: Mapping[str, Any], default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> int:
    """Tokens a request is charged up front: its prompt estimate plus its output budget.

    Args:
        request: The keyword arguments of the SDK call (``model``,
            ``messages``, ``max_tokens``, ...), or the JSON body.
        default_max_tokens: The output budget of a chat request that sets none.

    Raises:
        TypeError: If ``request`` is not a mapping.
    """
    if type(request) is not dict and not isinstance(request, Mapping):
        raise TypeError(
            "token estimates need each item to be the request's keyword arguments as a dict, "
            f"such as {{'model': ..., 'messages': [...]}}, got {type(request).__name__}"
        )
    return prompt_tokens(request) + max_output_tokens(request, default_max_tokens)


def usage_of(result: object) -> Mapping[str, int] | None:
    """The ``usage`` counts of a response (an SDK object or a dict), if it has any."""
    usage = _field(result, "usage")
    if usage is None:
        return None
    if isinstance(usage, Mapping):
        return {k: v for k, v in usage.items() if isinstance(v, int)}
    fields = ("prompt_tokens", "completion_tokens", "total_tokens", "input_tokens", "output_tokens")
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
    usage = _field(result, "usage")
    if usage is None:
        return None
    prompt = _field(usage, "prompt_tokens")
    if type(prompt) is not int:
        prompt = _field(usage, "input_tokens")  # the Responses API's name
        if type(prompt) is not int:
            return None
    return prompt + max_output_tokens(request, default_max_tokens)


def settled_tokens(
    request: Mapping[str, Any],
    outcome: object,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    charge: str = "reserved",
) -> int:
    """What a finished call costs against a TPM quota, from its result or its exception.

    - A call the provider rejected without doing the work (a 4xx other than
      429: see `rejected_without_work`) costs nothing.
    - Any other failure keeps its estimate: the provider may have counted it.
    - A response is charged by ``charge``: ``"reserved"`` (OpenAI's rule) at
      its reported prompt tokens plus the output budget it reserved,
      ``"usage"`` at its ``total_tokens``; without usage, at the estimate.
    """
    if rejected_without_work(outcome):
        return 0
    if isinstance(outcome, BaseException):
        return estimate_tokens(request, default_max_tokens)
    if charge == "usage":
        usage = usage_of(outcome)
        if usage is not None and "total_tokens" in usage:
            return usage["total_tokens"]
    else:
        charged = charged_tokens(request, outcome, default_max_tokens)
        if charged is not None:
            return charged
    return estimate_tokens(request, default_max_tokens)
