from __future__ import annotations

import json

import pytest

from anyfan.batch import JournalError
from anyfan.batch._records import (
    RecordHead,
    encode_body,
    encode_error,
    encode_response,
    read_head,
    usage_tokens,
)


def test_response_line_round_trips() -> None:
    body = {"id": "x", "usage": {"total_tokens": 12}, "text": 'é\n"q"'}
    data, value = encode_response(17, "req-17", 200, body, 2, 0.8123456)
    assert value is body
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1
    assert data.startswith(b'{"line":17,')
    assert json.loads(data) == {
        "line": 17,
        "custom_id": "req-17",
        "response": {"status_code": 200, "body": body},
        "attempts": 2,
        "latency_ms": 812.346,
    }
    assert read_head(data, "here") == RecordHead(17, ok=True)


def test_error_line_round_trips() -> None:
    error = {"code": "rate_limit_exceeded", "message": "slow down", "detail": ValueError("x")}
    data = encode_error(3, None, error, 5, 61.5)
    assert json.loads(data) == {
        "line": 3,
        "custom_id": None,
        "error": {"code": "rate_limit_exceeded", "message": "slow down", "detail": "x"},
        "attempts": 5,
        "latency_ms": 61500.0,
    }
    assert read_head(data, "here") == RecordHead(3, ok=False)


@pytest.mark.parametrize(("status", "ok"), [(200, True), (204, True), (400, False), (503, False)])
def test_non_2xx_responses_are_failures(status: int, ok: bool) -> None:
    data, _ = encode_response(1, "a", status, {}, 1, 0.0)
    assert read_head(data, "x").ok is ok


def test_ids_with_quotes_and_lone_surrogates() -> None:
    for custom_id in ['a"b\\', "\ud800x", "line\nbreak", "日本"]:
        data, _ = encode_response(2, custom_id, 200, {"s": "\udc80"}, 1, 0.0)
        assert data.count(b"\n") == 1
        data.decode("utf-8")  # strictly valid UTF-8
        obj = json.loads(data)
        assert obj["custom_id"] == custom_id
        assert obj["response"]["body"] == {"s": "\udc80"}
        assert read_head(data, "x") == RecordHead(2, ok=True)


def test_raw_json_bytes_are_kept_verbatim() -> None:
    raw = b'{"id":"x","usage":{"total_tokens":7}}'
    text, value = encode_body(b"  " + raw + b"\r\n")
    assert text == raw.decode()
    assert value == {"id": "x", "usage": {"total_tokens": 7}}
    data, _ = encode_response(1, "a", 200, raw, 1, 0.0)
    assert raw in data


def test_multi_line_json_bytes_are_put_on_one_line() -> None:
    text, value = encode_body(bytearray(b'{\n  "a": [1,\r\n 2]\n}'))
    assert text == '{"a":[1,2]}'
    assert value == {"a": [1, 2]}


@pytest.mark.parametrize("raw", [b"<html>\nBad gateway</html>", b"\xff\xfe\x00", b"[" * 5000])
def test_non_json_bytes_become_a_string(raw: bytes) -> None:
    text, value = encode_body(memoryview(raw))
    assert isinstance(value, str)
    assert "\n" not in text
    assert json.loads(text) == value


def test_usage_tokens() -> None:
    assert usage_tokens({"usage": {"total_tokens": 42}}) == 42
    assert usage_tokens({"usage": {"total_tokens": True}}) == 0
    assert usage_tokens({"usage": {"total_tokens": -3}}) == 0
    assert usage_tokens({"usage": "many"}) == 0
    assert usage_tokens({}) == 0
    assert usage_tokens("text") == 0


@pytest.mark.parametrize(
    ("attempts", "latency", "match"),
    [
        (-1, 0.0, "attempts must be >= 0"),
        (1, -0.5, "latency must be"),
        (1, float("nan"), "latency must be"),
        (1, float("inf"), "latency must be"),
    ],
)
def test_bad_attempts_or_latency_are_refused(attempts: int, latency: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encode_error(1, "a", {}, attempts, latency)


@pytest.mark.parametrize(
    ("raw", "head"),
    [
        # Hand-written (spaced) lines are read through the slow path.
        (b'{"custom_id": "a", "line": 4, "response": {"status_code": 201}}\n', RecordHead(4, True)),
        (b'{"line": 5, "error": {"code": "x"}}', RecordHead(5, False)),
        (b'{"line": 6, "response": {"status_code": 500, "body": null}}', RecordHead(6, False)),
        # A fast-path head whose tail is not ours is also checked in full.
        (
            b'{"line":7,"custom_id":"a","error":{},"attempts":1,"latency_ms":5}',
            RecordHead(7, False),
        ),
    ],
)
def test_foreign_but_valid_lines(raw: bytes, head: RecordHead) -> None:
    assert read_head(raw, "x") == head


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b'{"line":8,"custom_id":"a","error":{"code":"x"},"atte', "is not valid JSON"),
        (b"[1]", "is not a JSON object"),
        (b'{"line": 0, "error": {}}', "has no valid 'line' number"),
        (b'{"line": true, "error": {}}', "has no valid 'line' number"),
        (b'{"line": "3", "error": {}}', "has no valid 'line' number"),
        (
            b'{"line": 3, "response": {"status_code": "200"}}',
            "has neither a 'response' nor an 'error'",
        ),
        (b'{"line": 3, "error": "boom"}', "has neither a 'response' nor an 'error'"),
        (b"[" * 100_000, "is not valid JSON"),
    ],
)
def test_lines_that_are_not_records(raw: bytes, match: str) -> None:
    with pytest.raises(JournalError, match=f"results.jsonl, line 9, {match}"):
        read_head(raw, "results.jsonl, line 9,")


def test_raw_bytes_with_their_decoded_body_are_written_verbatim() -> None:
    raw = b'{"usage": {"total_tokens": 3}, "x": "\xc3\xa9"}'
    body = json.loads(raw)
    data, value = encode_response(4, "a", 200, body, 1, 0.0, raw=b" " + raw + b"\n")
    assert value is body
    assert raw in data
    assert json.loads(data)["response"]["body"] == body


@pytest.mark.parametrize("raw", [b'{\n"a": 1}', b'{"a": "\xff"}'])
def test_raw_bytes_that_cannot_go_verbatim_are_re_encoded(raw: bytes) -> None:
    body = {"a": 1}
    data, _ = encode_response(4, "a", 200, body, 1, 0.0, raw=raw)
    assert data.count(b"\n") == 1
    assert json.loads(data)["response"]["body"] == body
