"""Span attributes for what anyfan can recognise by shape: OpenAI-style requests and replies.

Named as OpenTelemetry's semantic conventions name them (GenAI and HTTP);
the strings are written out so that only ``opentelemetry-api`` is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

#: The request key that tells what kind of GenAI operation an item is.
_OPERATIONS: Final = (("messages", "chat"), ("prompt", "text_completion"), ("input", "embeddings"))


def request_attributes(item: object) -> tuple[str, dict[str, Any]]:
    """The span name and attributes for a call on ``item``.

    An OpenAI-style request (a mapping with ``model`` and ``messages``,
    ``prompt`` or ``input``) gets GenAI attributes and the name
    ``"{operation} {model}"``; anything else is an ``"anyfan.call"``.
    """
    if not isinstance(item, Mapping):
        return "anyfan.call", {}
    model = item.get("model")
    if not isinstance(model, str):
        return "anyfan.call", {}
    operation = next((name for key, name in _OPERATIONS if key in item), None)
    if operation is None:
        return "anyfan.call", {}
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": model,
    }
    for key in ("max_completion_tokens", "max_tokens"):
        value = item.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            attributes["gen_ai.request.max_tokens"] = value
            break
    for key in ("temperature", "top_p"):
        value = item.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attributes[f"gen_ai.request.{key}"] = value
    return f"{operation} {model}", attributes


def _field(obj: object, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def response_attributes(value: object) -> dict[str, Any]:
    """GenAI attributes of a reply: its model, id, token usage and finish reasons."""
    attributes: dict[str, Any] = {}
    for key, name in (("model", "gen_ai.response.model"), ("id", "gen_ai.response.id")):
        field = _field(value, key)
        if isinstance(field, str):
            attributes[name] = field
    usage = _field(value, "usage")
    if usage is not None:
        for keys, name in (
            (("prompt_tokens", "input_tokens"), "gen_ai.usage.input_tokens"),
            (("completion_tokens", "output_tokens"), "gen_ai.usage.output_tokens"),
        ):
            for key in keys:
                count = _field(usage, key)
                if isinstance(count, int) and not isinstance(count, bool):
                    attributes[name] = count
                    break
    choices = _field(value, "choices")
    if isinstance(choices, list | tuple):
        reasons = [r for r in (_field(c, "finish_reason") for c in choices) if isinstance(r, str)]
        if reasons:
            attributes["gen_ai.response.finish_reasons"] = reasons
    return attributes


def error_attributes(error: BaseException) -> dict[str, Any]:
    """``error.type`` and, for an HTTP error, ``http.response.status_code``."""
    attributes: dict[str, Any] = {"error.type": type(error).__name__}
    status = getattr(error, "status_code", None)
    if status is None:
        status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        attributes["http.response.status_code"] = status
    return attributes
