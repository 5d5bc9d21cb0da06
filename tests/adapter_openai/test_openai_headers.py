"""Reading rate-limit and retry headers: Go durations, Retry-After, x-ratelimit-*."""

from __future__ import annotations

import email.utils
from types import ModuleType

import pytest
from hypothesis import given

from anyfan.openai import RateLimitHeaders, parse_go_duration, retry_after
from anyfan.openai._headers import count, header
from strategies import go_durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("51.189s", 51.189),
        ("1s", 1.0),
        ("0s", 0.0),
        ("1h2m3s", 3723.0),
        ("1.5µs", 1.5e-6),
        ("1.5μs", 1.5e-6),  # Greek mu, the other spelling of micro
        ("2us", 2e-6),
        ("40ns", 4e-8),
        (".5s", 0.5),
        ("3.s", 3.0),
        ("  12ms ", 0.012),
        ("7", 7.0),  # a bare number, as some compatible servers send: seconds
        ("0.25", 0.25),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "abc",
        "5x",
        "-1s",
        "1s-",
        "s",
        "1 s",
        "1s 2ms",
        "ms20",
        "-3",
        "inf",
        "nan",
        "1e999",
    ],
)
def test_not_go_durations(text: str) -> None:
    assert parse_go_duration(text) is None


@given(go_durations)
def test_go_durations_round_trip(case: tuple[str, float]) -> None:
    text, seconds = case
    assert parse_go_duration(text) == pytest.approx(seconds, abs=1e-9)


# -- header lookup ---------------------------------------------------------------


def test_header_from_a_plain_dict_in_any_case() -> None:
    headers = {"Retry-After": "3", "X-Other": b"bytes"}
    assert header(headers, "retry-after") == "3"
    assert header(headers, "RETRY-AFTER") == "3"
    assert header(headers, "x-other") == "bytes"
    assert header(headers, "missing") is None


def test_header_from_a_mapping_with_odd_keys() -> None:
    headers = {1: "one", "Two": 2}
    assert header(headers, "two") == "2"
    assert header(headers, "one") is None


def test_header_from_something_without_get() -> None:
    assert header(None, "retry-after") is None
    assert header(["retry-after"], "retry-after") is None


def test_header_from_httpx(http: ModuleType) -> None:
    headers = http.Headers({"Retry-After-Ms": "1500"})
    assert header(headers, "retry-after-ms") == "1500"


def test_header_from_aiohttp() -> None:
    multidict = pytest.importorskip("multidict")
    headers = multidict.CIMultiDictProxy(multidict.CIMultiDict({"X-Should-Retry": "false"}))
    assert header(headers, "x-should-retry") == "false"


# -- Retry-After -------------------------------------------------------------------


def test_retry_after_ms_takes_precedence() -> None:
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5


def test_retry_after_seconds() -> None:
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after": "0.5"}) == 0.5


def test_retry_after_absent() -> None:
    assert retry_after({}) is None
    assert retry_after({"x-other": "1"}) is None


@pytest.mark.parametrize("bad", ["soon", "-5", "nan", "inf", ""])
def test_malformed_retry_after_ms_falls_back_to_retry_after(bad: str) -> None:
    assert retry_after({"retry-after-ms": bad, "retry-after": "4"}) == 4.0
    assert retry_after({"retry-after-ms": bad}) is None


@pytest.mark.parametrize("bad", ["-1", "nan", "inf", "later", ""])
def test_malformed_retry_after_is_no_delay(bad: str) -> None:
    assert retry_after({"retry-after": bad}) is None


def test_retry_after_as_http_date() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after({"retry-after": date}, now=lambda: now) == pytest.approx(30.0)


def test_retry_after_date_in_the_past_is_zero() -> None:
    now = 1_700_000_000.0
    date = email.utils.formatdate(now - 30, usegmt=True)
    assert retry_after({"retry-after": date}, now=lambda: now) == 0.0


def test_retry_after_date_uses_the_wall_clock_by_default() -> None:
    date = email.utils.formatdate(0, usegmt=True)  # 1970: long past
    assert retry_after({"retry-after": date}) == 0.0


def test_retry_after_date_out_of_range_is_no_delay() -> None:
    assert retry_after({"retry-after": "Fri, 01 Jan 99999 00:00:00 GMT"}) is None


# -- x-ratelimit-* -----------------------------------------------------------------


def test_rate_limit_headers_parsed() -> None:
    seen = RateLimitHeaders.parse(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-reset-requests": "120ms",
            "x-ratelimit-limit-tokens": "200000",
            "x-ratelimit-remaining-tokens": "199000.0",
            "x-ratelimit-reset-tokens": "6m0s",
        }
    )
    assert seen == RateLimitHeaders(500, 499, 0.12, 200_000, 199_000, 360.0)


def test_rate_limit_headers_missing_or_malformed_are_none() -> None:
    seen = RateLimitHeaders.parse(
        {
            "x-ratelimit-limit-requests": "lots",
            "x-ratelimit-remaining-requests": "-1",
            "x-ratelimit-reset-requests": "soon",
            "x-ratelimit-remaining-tokens": "12",
        }
    )
    assert seen == RateLimitHeaders(remaining_tokens=12)
    assert RateLimitHeaders.parse({}) == RateLimitHeaders()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("59999", 59999), ("12.7", 12), ("1e3", 1000), (" 7 ", 7)],
)
def test_counts(text: str, expected: int) -> None:
    assert count(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "nan", "inf", "²", "many"])
def test_not_counts(text: str) -> None:
    assert count(text) is None
