"""The result lines of RESULTS.jsonl: writing them, and reading back what they say (sans-I/O).

Each line is one compact JSON object with its keys in a fixed order::

    {"line":17,"custom_id":"a","response":{"status_code":200,"body":{...}},"attempts":1,"latency_ms":812.345}
    {"line":18,"custom_id":"b","error":{"code":"...","message":"..."},"attempts":3,"latency_ms":40210.007}

``line`` comes first so that a resumed job can read back which lines are done
without decoding the bodies.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any, Final

from ._errors import JournalError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

#: What a secret is replaced with.
REDACTED: Final = "[redacted]"

_HEAD: Final = re.compile(
    rb'\{"line":([1-9][0-9]*),"custom_id":(?:null|"(?:[^"\\]|\\.)*"),'
    rb'(?:"response":\{"status_code":([0-9]+),|"error":)'
)
_TAIL: Final = re.compile(rb',"attempts":[0-9]+,"latency_ms":[0-9]+\.[0-9]+\}\r?\n?')


@dataclass(frozen=True, slots=True)
class RecordHead:
    """What a result line says about its input line.

    Attributes:
        line: The input line it answers.
        ok: Whether it is a response with a 2xx status code.
    """

    line: int
    ok: bool


# Lines are encoded with "backslashreplace": a lone surrogate can only come from a
# JSON string, where the escape it produces (\udc80) is exactly the JSON for it.


def _dumps(value: Any) -> str:
    # default=str: an error detail that is not JSON (an exception, a path) is kept as text.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _check(attempts: int, latency: float) -> str:
    if attempts < 0:
        raise ValueError(f"attempts must be >= 0, got {attempts}")
    if not (math.isfinite(latency) and latency >= 0):
        raise ValueError(f"latency must be a finite number of seconds >= 0, got {latency}")
    return f',"attempts":{attempts},"latency_ms":{latency * 1000:.3f}}}\n'


def _id(custom_id: str | None) -> str:
    # encode_basestring is json's own C string encoder, without the cost of a dumps() call.
    return "null" if custom_id is None else encode_basestring(custom_id)


def encode_body(body: Any) -> tuple[str, Any]:
    """Encode a response body for a result line; return the text and the body's value.

    ``bytes`` are the body as received: kept verbatim when they are UTF-8 JSON
    on one line (saving an encode), re-encoded onto one line when they span
    several (a line break would split the record), and stored as a JSON
    string when they are not JSON at all (say, a proxy's HTML error page).
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        return _dumps(body), body
    raw = bytes(body).strip()
    try:
        value = json.loads(raw)
        text = raw.decode()
    except (ValueError, RecursionError):
        text = raw.decode(errors="replace")
        return _dumps(text), text
    if "\n" in text or "\r" in text:
        return _dumps(value), value
    return text, value


def usage_tokens(body: Any) -> int:
    """Return the ``usage.total_tokens`` an OpenAI-style response body reports, or 0."""
    usage = body.get("usage") if isinstance(body, dict) else None
    tokens = usage.get("total_tokens") if isinstance(usage, dict) else None
    return tokens if type(tokens) is int and tokens > 0 else 0


def _verbatim(raw: bytes, value: Any) -> tuple[str, Any]:
    raw = raw.strip()
    if b"\n" in raw or b"\r" in raw:
        return _dumps(value), value
    try:
        return raw.decode(), value
    except UnicodeDecodeError:
        return _dumps(value), value


def encode_response(
    line: int,
    custom_id: str,
    status_code: int,
    body: Any,
    attempts: int,
    latency: float,
    raw: bytes | None = None,
) -> tuple[bytes, Any]:
    """Encode the result line for a request that got an HTTP response.

    Returns the line and the body's value. ``latency`` is in seconds; the line
    gives it in milliseconds. ``raw``, if given, is the body's JSON exactly as
    received, which the caller has already decoded into ``body``: it is
    written as it is (unless it spans lines), saving an encode.
    """
    tail = _check(attempts, latency)
    text, value = encode_body(body) if raw is None else _verbatim(raw, body)
    record = (
        f'{{"line":{line},"custom_id":{_id(custom_id)},"response":'
        f'{{"status_code":{status_code},"body":{text}}}{tail}'
    )
    return record.encode("utf-8", "backslashreplace"), value


def encode_error(
    line: int, custom_id: str | None, error: Mapping[str, Any], attempts: int, latency: float
) -> bytes:
    """Encode the result line for a request that ended without a response (latency in s)."""
    tail = _check(attempts, latency)
    record = f'{{"line":{line},"custom_id":{_id(custom_id)},"error":{_dumps(error)}{tail}'
    return record.encode("utf-8", "backslashreplace")


def read_head(raw: bytes, where: str) -> RecordHead:
    """Read which input line a result line answers, and whether it succeeded.

    Lines written by this module are read without decoding their bodies;
    anything else (say, a hand-edited line) is decoded in full and checked.

    Raises:
        JournalError: The line is not a complete result record; ``where``
            names it in the message.
    """
    head = _HEAD.match(raw)
    if head is not None and _TAIL.fullmatch(raw, raw.rfind(b',"attempts":')) is not None:
        status = head[2]
        return RecordHead(int(head[1]), status is not None and 200 <= int(status) < 300)
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        raise JournalError(f"{where} is not valid JSON: not a line anyfan wrote") from None
    if not isinstance(obj, dict):
        raise JournalError(f"{where} is not a JSON object: not a line anyfan wrote")
    line = obj.get("line")
    if type(line) is not int or line < 1:
        raise JournalError(f"{where} has no valid 'line' number: not a line anyfan wrote")
    response = obj.get("response")
    if isinstance(response, dict) and type(response.get("status_code")) is int:
        return RecordHead(line, 200 <= response["status_code"] < 300)
    if isinstance(obj.get("error"), dict):
        return RecordHead(line, False)
    raise JournalError(f"{where} has neither a 'response' nor an 'error': not a line anyfan wrote")


def _scrub_value(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, list):
        return [_scrub_value(v, secrets) for v in value]
    if isinstance(value, dict):
        return {_scrub_value(k, secrets): _scrub_value(v, secrets) for k, v in value.items()}
    return value


class Scrubber:
    """Takes secrets (the API key, a URL's password) out of result lines and messages.

    A line is searched for each secret as it would appear in JSON; only a line
    holding one is decoded, cleaned string by string (so the line stays valid
    JSON whatever the secret is) and encoded again. The ``line`` and
    ``custom_id`` are the caller's own and are kept.

    Args:
        secrets: The texts never to write; empty ones are ignored.
    """

    __slots__ = ("_forms", "_secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so that a secret holding another is replaced whole.
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        forms: set[bytes] = set()
        for secret in self._secrets:
            forms.add(secret.encode("utf-8", "backslashreplace"))
            forms.add(encode_basestring(secret)[1:-1].encode("utf-8", "backslashreplace"))
            forms.add(json.dumps(secret)[1:-1].encode())
        self._forms = tuple(forms)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def text(self, text: str) -> str:
        """``text`` with every secret replaced by ``[redacted]``."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def line(self, data: bytes) -> bytes:
        """A result line with every secret in its response or error replaced."""
        if not any(form in data for form in self._forms):
            return data
        try:
            record = json.loads(data)
        except (ValueError, RecursionError):  # never a line this module wrote; be safe anyway
            return self.text(data.decode("utf-8", "replace")).encode()
        if not isinstance(record, dict):
            return self.text(data.decode("utf-8", "replace")).encode()
        cleaned = {
            k: v if k in ("line", "custom_id") else _scrub_value(v, self._secrets)
            for k, v in record.items()
        }
        return (_dumps(cleaned) + "\n").encode("utf-8", "backslashreplace")
