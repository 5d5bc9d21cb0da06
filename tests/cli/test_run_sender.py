"""The pieces of the sender that need no server: URLs, usage numbers, records, limits."""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from run_helpers import SECRET, chat, read_results

from anyfan import Outcome, Rate
from anyfan.batch import BatchJob, BatchRequest
from anyfan.batch import _send as _sender
from anyfan.openai import observe_rate_limits, request_limits
from anyfan.transport import ConnectionFailed, HttpResponse, HttpStatusError
from strategies import usage_numbers

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("base", "path", "url"),
    [
        (
            "https://api.openai.com/v1",
            "/v1/chat/completions",
            "https://api.openai.com/v1/chat/completions",
        ),
        ("https://api.openai.com/v1/", "/v1/embeddings", "https://api.openai.com/v1/embeddings"),
        ("http://127.0.0.1:8000", "/v1/embeddings", "http://127.0.0.1:8000/v1/embeddings"),
        (
            "https://proxy.example/openai",
            "/v1/responses",
            "https://proxy.example/openai/v1/responses",
        ),
    ],
)
def test_endpoint_url_never_doubles_v1(base: str, path: str, url: str) -> None:
    assert _sender.endpoint_url(base, path) == url


@pytest.mark.parametrize(
    ("raw", "key", "value"),
    [
        (b'{"usage":{"prompt_tokens":17,"total_tokens":30}}', b"total_tokens", 30),
        (b'{\n  "usage": {\n    "total_tokens" :  42\n  }\n}', b"total_tokens", 42),
        (b'{"usage":{"prompt_tokens":17,"prompt_tokens_details":{}}}', b"prompt_tokens", 17),
        (b'{"content":"say \\"total_tokens\\": 5"}', b"total_tokens", None),
        (b'{"total_tokens":null}', b"total_tokens", None),
        (b"{}", b"total_tokens", None),
        (b'{"a":1,"total_tokens":', b"total_tokens", None),
    ],
)
def test_number_after_reads_a_key_without_decoding(
    raw: bytes, key: bytes, value: int | None
) -> None:
    assert _sender.number_after(raw, key) == value


@given(usage=usage_numbers, text=st.text(), indent=st.sampled_from([None, 2]))
def test_number_after_agrees_with_a_full_decode(
    usage: dict[str, int], text: str, indent: int | None
) -> None:
    raw = json.dumps({"content": text, "usage": usage}, indent=indent).encode()
    assert _sender.number_after(raw, b"total_tokens") == usage["total_tokens"]
    assert _sender.number_after(raw, b"prompt_tokens") == usage["prompt_tokens"]


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        (b'{"a":1}', True),
        ('{"a":"é"}'.encode(), True),
        (b'{"a":\n1}', False),
        (b'{"a":\r1}', False),
        (b"[1]", False),
        (b"", False),
        (b"<html></html>", False),
        (b'{"a":"\xff"}', False),
    ],
)
def test_writable_as_is(raw: bytes, ok: bool) -> None:
    assert _sender.writable_as_is(raw) is ok


def test_scrub() -> None:
    assert _sender.scrub(f"bad {SECRET}!", SECRET) == "bad [redacted]!"
    assert _sender.scrub("nothing", None) == "nothing"


def test_error_objects_name_the_kind_of_failure() -> None:
    assert _sender.error_object(TimeoutError(), None) == {
        "code": "timeout",
        "message": "TimeoutError: TimeoutError",
    }
    assert _sender.error_object(ConnectionFailed("reset"), None)["code"] == "connection_error"
    odd = _sender.error_object(RuntimeError(f"key {SECRET}"), SECRET)
    assert odd == {"code": "client_error", "message": "RuntimeError: key [redacted]"}


def test_settings_repr_leaves_the_key_out() -> None:
    settings = _sender.SendSettings(
        "http://x/v1", {"Authorization": f"Bearer {SECRET}"}, secret=SECRET
    )
    assert SECRET not in repr(settings)


def outcome(request: BatchRequest, value: Any = None, error: Exception | None = None) -> Any:
    return Outcome(0, request, value, error, attempts=2, elapsed=0.25)


def test_records_keep_any_body_whole(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(chat(n)) + "\n" for n in range(5)))
    with BatchJob.open(src, tmp_path / "out.jsonl") as job:
        requests = list(job.pending())
        record = _sender.record_outcome
        compact = b'{"id":"x","usage":{"prompt_tokens":3,"total_tokens":8}}'
        record(job, outcome(requests[0], HttpResponse(200, {}, compact)), None)
        pretty = json.dumps({"id": "y", "usage": {"total_tokens": 9}}, indent=2).encode()
        record(job, outcome(requests[1], HttpResponse(200, {}, pretty)), None)
        html = HttpStatusError(HttpResponse(502, {}, b"<html>bad gateway</html>"))
        record(job, outcome(requests[2], error=html), None)
        record(job, outcome(requests[3], error=ConnectionFailed("reset by peer")), None)
        latin = HttpResponse(200, {}, b'{"t":"\xe9"}')
        record(job, outcome(requests[4], latin), None)
        assert job.counters.tokens == 8 + 9
    results = read_results(tmp_path / "out.jsonl")
    assert results[0]["response"] == {
        "status_code": 200,
        "body": {"id": "x", "usage": {"prompt_tokens": 3, "total_tokens": 8}},
    }
    assert results[1]["response"]["body"] == {"id": "y", "usage": {"total_tokens": 9}}
    assert results[2]["response"] == {"status_code": 502, "body": "<html>bad gateway</html>"}
    assert results[3]["error"] == {
        "code": "connection_error",
        "message": "ConnectionFailed: reset by peer",
    }
    assert results[4]["response"]["body"] == '{"t":"\ufffd"}'
    assert all(r["attempts"] == 2 and r["latency_ms"] == 250.0 for r in results)


def request(body: dict[str, Any]) -> BatchRequest:
    return BatchRequest(1, "a", "POST", "/v1/chat/completions", body)


def test_limits_charge_the_estimate_and_settle_at_the_reported_prompt() -> None:
    requests, tokens = _sender.batch_limits(rpm=600, tpm=6000)
    assert requests is not None
    assert tokens is not None
    assert (requests.limit, requests.per) == (600, 60)
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 50}
    assert tokens.cost_of(request(body)) == 3 + 4 + 10 + 50
    reported = HttpResponse(200, {}, b'{"usage":{"prompt_tokens":30,"total_tokens":44}}')
    assert tokens.actual_of(request(body), reported) == 30 + 50
    silent = HttpResponse(200, {}, b"{}")
    assert tokens.actual_of(request(body), silent) == 3 + 4 + 10 + 50
    assert _sender.batch_limits(None, None) == (None, None)


class Seen:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.calls: list[tuple[float, float | None]] = []

    def observe(self, remaining: float, reset: float | None = None, **_: object) -> None:
        self.calls.append((remaining, reset))


def test_rate_limit_headers_correct_a_rate_below_one_seconds_share() -> None:
    follow = functools.partial(observe_rate_limits, now=0.0)
    requests, tokens = Seen(rate=10), Seen(rate=1000)
    plenty = {
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-remaining-tokens": "5000",
        "x-ratelimit-reset-tokens": "6m0s",  # a long reset with plenty left: not a stall
    }
    follow(plenty, requests=requests, tokens=tokens)
    assert requests.calls == tokens.calls == []
    follow({**plenty, "x-ratelimit-remaining-requests": "10"}, requests=requests, tokens=tokens)
    assert requests.calls == []  # exactly one second's share left: still nothing
    follow({**plenty, "x-ratelimit-remaining-requests": "9"}, requests=requests, tokens=tokens)
    follow({**plenty, "x-ratelimit-remaining-tokens": "999"}, requests=requests, tokens=tokens)
    follow({}, requests=requests, tokens=tokens)
    follow({"x-ratelimit-remaining-requests": "soon"}, requests=requests, tokens=tokens)
    assert requests.calls == [(9, 1.0)]
    assert tokens.calls == [(999, 360.0)]
    both_low = {"x-ratelimit-remaining-tokens": "5", "x-ratelimit-remaining-requests": "1"}
    follow(both_low, requests=requests, tokens=None)
    assert requests.calls[-1] == (1, None)
    assert len(tokens.calls) == 1
    follow(both_low, requests=None, tokens=tokens)
    assert tokens.calls[-1] == (5, None)


def test_a_correction_holds_the_real_rate_back() -> None:
    rate = Rate(600, per=60)  # 10 a second
    before = rate._state.earliest(1, 0.0)
    observe_rate_limits(
        {"x-ratelimit-remaining-requests": "20"}, requests=rate, tokens=None, now=0.0
    )
    assert rate._state.earliest(1, 0.0) == before  # more than a second's share: untouched
    observe_rate_limits(
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"},
        requests=rate,
        tokens=None,
        now=0.0,
    )
    assert rate._state.earliest(1, 0.0) > before


def test_request_limits_read_items_and_usage_through_the_hooks() -> None:
    def usage(result: dict[str, int] | None) -> dict[str, int] | None:
        return result

    _, tokens = request_limits(tpm=6000, body=lambda item: item[1], usage=usage)
    assert tokens is not None
    body = {"model": "m", "input": "x" * 40, "max_output_tokens": 50}
    item = ("id", body)
    assert tokens.actual_of(item, {"input_tokens": 12}) == 12 + 50
    assert tokens.actual_of(item, {"prompt_tokens": 7}) == 7 + 50
    assert tokens.actual_of(item, {}) == tokens.cost_of(item)
    assert tokens.actual_of(item, None) == tokens.cost_of(item)
