from __future__ import annotations

import json

import pytest

from anyfan.batch import DEFAULT_URL, BatchRequest, LineProblem, parse_line


def batch_line(**overrides: object) -> bytes:
    obj: dict[str, object] = {
        "custom_id": "req-1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "m", "messages": []},
    }
    obj.update(overrides)
    return json.dumps(obj).encode() + b"\n"


def problem(raw: bytes, line: int = 7) -> LineProblem:
    result = parse_line(raw, line)
    assert isinstance(result, LineProblem), result
    assert result.kind == "malformed_line"
    assert result.message.startswith(f"line {line}: ")
    return result


def test_batch_shaped_line() -> None:
    req = parse_line(batch_line(url="/v1/embeddings"), 3)
    assert req == BatchRequest(3, "req-1", "POST", "/v1/embeddings", {"model": "m", "messages": []})
    assert json.loads(req.body_bytes()) == {"model": "m", "messages": []}


def test_bare_body_gets_line_number_as_id_and_keeps_its_bytes() -> None:
    raw = b'  {"model": "m", "messages": [{"role": "user", "content": "h\\u00e9"}]}\r\n'
    req = parse_line(raw, 17, default_url="/v1/responses")
    assert isinstance(req, BatchRequest)
    assert (req.custom_id, req.method, req.url, req.line) == (
        "line-17",
        "POST",
        "/v1/responses",
        17,
    )
    assert req.body["messages"][0]["content"] == "hé"
    assert req.body_bytes() == raw.strip()


def test_default_url_is_chat_completions() -> None:
    req = parse_line(b"{}", 1)
    assert isinstance(req, BatchRequest)
    assert req.url == DEFAULT_URL == "/v1/chat/completions"
    assert req.body == {}


@pytest.mark.parametrize("raw", [b"", b"\n", b"   \t\r\n"])
def test_blank_lines_are_skipped(raw: bytes) -> None:
    assert parse_line(raw, 4) is None


def test_utf8_bom_on_first_line_is_ignored() -> None:
    assert isinstance(parse_line(b"\xef\xbb\xbf{}\n", 1), BatchRequest)
    problem(b"\xef\xbb\xbf{}\n", 2)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"not json", "invalid JSON at column 1"),
        (b'{"a": 1', "invalid JSON at column"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b'{"a": NaN}', "NaN is not valid JSON"),
        (b'{"a": -Infinity}', "-Infinity is not valid JSON"),
        (b'{"a": ' + b"9" * 5000 + b"}", "invalid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"[1, 2]", "expected a JSON object, got an array"),
        (b'"text"', "got a string"),
        (b"3.5", "got a number"),
        (b"true", "got a boolean"),
        (b"null", "got null"),
    ],
)
def test_malformed_lines_name_the_problem(raw: bytes, fragment: str) -> None:
    assert fragment in problem(raw).message


@pytest.mark.parametrize(
    ("overrides", "fragment", "has_id"),
    [
        ({"extra": 1}, 'unexpected key "extra" in a Batch API line', True),
        ({"method": "GET"}, "unsupported method \"GET\": only 'POST' is supported", True),
        ({"method": "post"}, "unsupported method", True),
        ({"url": "/v1/images"}, 'unsupported url "/v1/images": expected one of', True),
        ({"url": 5}, "unsupported url 5", True),
        ({"body": [1]}, "'body' must be a JSON object, got an array", True),
        ({"custom_id": ""}, "'custom_id' must be a non-empty string, got \"\"", False),
        ({"custom_id": 12}, "'custom_id' must be a non-empty string, got 12", False),
    ],
)
def test_wrong_batch_shape(overrides: dict[str, object], fragment: str, has_id: bool) -> None:
    result = problem(batch_line(**overrides))
    assert fragment in result.message
    assert (result.custom_id is not None) == has_id


@pytest.mark.parametrize("missing", ["custom_id", "method", "url", "body"])
def test_missing_batch_key(missing: str) -> None:
    obj = json.loads(batch_line())
    del obj[missing]
    result = problem(json.dumps(obj).encode())
    assert f"missing {missing!r}" in result.message


def test_long_values_are_cut_short_in_messages() -> None:
    result = problem(batch_line(url="/v1/" + "x" * 500))
    assert "..." in result.message
    assert len(result.message) < 300


def test_problem_error_object() -> None:
    result = problem(b"oops", 9)
    assert result.error() == {"code": "malformed_line", "message": result.message}
    assert result.custom_id is None


def test_custom_urls() -> None:
    assert isinstance(parse_line(batch_line(url="/x"), 1, urls={"/x"}), BatchRequest)
    assert isinstance(parse_line(batch_line(), 1, urls={"/x"}), LineProblem)
