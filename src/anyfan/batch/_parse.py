"""Turning one input line into a request or a problem (sans-I/O).

A line is either in the OpenAI Batch API shape, an object with exactly the
keys ``custom_id``, ``method``, ``url`` and ``body``, or a bare request body.
An object that has any of those four keys is taken to be in the Batch shape
and must then have all four and no other; any other object is a bare body,
posted to the job's default URL under the id ``line-N`` (N counts the file's
lines from 1, blank lines included).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from collections.abc import Collection

#: Endpoints the OpenAI Batch API accepts, and so the ones a Batch-shaped line may name.
DEFAULT_URLS: Final = frozenset(
    {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/moderations",
        "/v1/responses",
    }
)
#: Where a bare body is posted unless the job says otherwise.
DEFAULT_URL: Final = "/v1/chat/completions"
#: The only method the Batch API (and so this job) supports.
METHOD: Final = "POST"

_BATCH_KEYS: Final = ("custom_id", "method", "url", "body")
_BATCH_KEY_SET: Final = frozenset(_BATCH_KEYS)
_BOM: Final = b"\xef\xbb\xbf"
_SHOWN: Final = 60  # longest value quoted back in a message


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One request to send, read from one input line.

    Attributes:
        line: The input line it came from, counting from 1.
        custom_id: Its id: the line's ``custom_id``, or ``line-N`` for a bare body.
        method: The HTTP method (always ``"POST"``).
        url: The endpoint path, such as ``"/v1/chat/completions"``.
        body: The request body, as parsed JSON.
        raw_body: For a bare body, the line's own bytes, which are the body
            already encoded; ``None`` for a Batch-shaped line.
    """

    line: int
    custom_id: str
    method: str
    url: str
    body: dict[str, Any]
    raw_body: bytes | None = None

    def body_bytes(self) -> bytes:
        """Return the body as JSON bytes, ready to post (no re-encoding for a bare body)."""
        if self.raw_body is not None:
            return self.raw_body
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()


ProblemKind = Literal["malformed_line", "duplicate_custom_id"]


@dataclass(frozen=True, slots=True)
class LineProblem:
    """An input line that will not be sent, and why.

    Attributes:
        line: The input line, counting from 1.
        kind: ``"malformed_line"`` or ``"duplicate_custom_id"``.
        message: What is wrong, naming the line.
        custom_id: The line's id, when it could be read.
    """

    line: int
    kind: ProblemKind
    message: str
    custom_id: str | None = None

    def error(self) -> dict[str, str]:
        """Return the error object recorded for this line in the results."""
        return {"code": self.kind, "message": self.message}


def _shown(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


# One decoder for all lines: json.loads would build a new one per call for parse_constant.
_DECODE: Final = json.JSONDecoder(parse_constant=_no_constants).decode


def _bad(line: int, message: str, custom_id: str | None = None) -> LineProblem:
    return LineProblem(line, "malformed_line", f"line {line}: {message}", custom_id)


def _kind_of(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def parse_line(
    raw: bytes,
    line: int,
    *,
    default_url: str = DEFAULT_URL,
    urls: Collection[str] = DEFAULT_URLS,
) -> BatchRequest | LineProblem | None:
    """Read one input line.

    Args:
        raw: The line's bytes, with or without its line ending.
        line: Its number in the file, counting from 1.
        default_url: Where a bare body is posted.
        urls: The endpoints a Batch-shaped line may name.

    Returns:
        The request; a `LineProblem` (kind ``"malformed_line"``) if the line
        cannot be sent; or ``None`` for a blank line, which is skipped.
    """
    if line == 1 and raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    text = raw.strip()
    if not text:
        return None

    try:
        # Decoded here: json.loads would also accept UTF-16 and UTF-32, which JSONL is not.
        obj = _DECODE(text.decode())
    except json.JSONDecodeError as exc:
        return _bad(line, f"invalid JSON at column {exc.colno}: {exc.msg}")
    except UnicodeDecodeError:
        return _bad(line, "not valid UTF-8")
    except ValueError as exc:  # NaN/Infinity, or an integer too long to read
        return _bad(line, f"invalid JSON: {exc}")
    except RecursionError:
        return _bad(line, "JSON nested too deeply")
    if not isinstance(obj, dict):
        return _bad(line, f"expected a JSON object, got {_kind_of(obj)}")
    if _BATCH_KEY_SET.isdisjoint(obj):
        return BatchRequest(line, f"line-{line}", METHOD, default_url, obj, text)

    custom_id = obj.get("custom_id")
    cid = custom_id if isinstance(custom_id, str) and custom_id else None
    for key in obj:
        if key not in _BATCH_KEY_SET:
            return _bad(
                line,
                f"unexpected key {_shown(key)} in a Batch API line "
                f"(expected exactly {', '.join(_BATCH_KEYS)})",
                cid,
            )
    for key in _BATCH_KEYS:
        if key not in obj:
            return _bad(
                line, f"missing {key!r} (a Batch API line needs {', '.join(_BATCH_KEYS)})", cid
            )
    if cid is None:
        return _bad(line, f"'custom_id' must be a non-empty string, got {_shown(custom_id)}")
    method, url, body = obj["method"], obj["url"], obj["body"]
    if method != METHOD:
        return _bad(line, f"unsupported method {_shown(method)}: only {METHOD!r} is supported", cid)
    if not isinstance(url, str) or url not in urls:
        return _bad(
            line, f"unsupported url {_shown(url)}: expected one of {', '.join(sorted(urls))}", cid
        )
    if not isinstance(body, dict):
        return _bad(line, f"'body' must be a JSON object, got {_kind_of(body)}", cid)
    return BatchRequest(line, cid, METHOD, url, body)
