"""Retry classification of failed OpenAI calls: statuses, codes, headers and exception classes."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest
from openai_helpers import sdk_http

from anyfan.openai import (
    Verdict,
    classify_exception,
    classify_response,
    delay_hint,
    is_retryable,
    openai_retry,
)
from anyfan.openai._classify import error_code

openai = pytest.importorskip("openai")

URL = "http://127.0.0.1:9/v1/chat/completions"
QUOTA_BODY = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}
RATE_BODY = {
    "error": {
        "message": "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}
TOO_LARGE_BODY = {
    "error": {
        "message": "Request too large for gpt-4o-mini on tokens per min (TPM): Limit 1000, "
        "Requested 5000.",
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}


# -- by status, headers and body -----------------------------------------------------


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 520, 599])
def test_transient_statuses_are_retried(status: int) -> None:
    verdict = classify_response(status, {}, None)
    assert verdict == Verdict(True, None, f"HTTP {status}")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
def test_other_client_errors_are_not(status: int) -> None:
    verdict = classify_response(status, {"retry-after": "1"}, {"error": {"code": "oops"}})
    assert not verdict.retry
    assert verdict.delay is None
    assert f"HTTP {status} oops" in verdict.reason


def test_rate_limit_429_is_retried_after_the_directed_delay() -> None:
    verdict = classify_response(429, {"retry-after-ms": "250", "retry-after": "1"}, RATE_BODY)
    assert verdict == Verdict(True, 0.25, "HTTP 429 rate_limit_exceeded")


@pytest.mark.parametrize("body", [QUOTA_BODY, QUOTA_BODY["error"]])
def test_insufficient_quota_is_never_retried(body: object) -> None:
    # Not even when the server says otherwise: billing errors never heal.
    verdict = classify_response(429, {"retry-after": "1", "x-should-retry": "true"}, body)
    assert not verdict.retry
    assert verdict.delay is None
    assert "insufficient_quota" in verdict.reason


def test_insufficient_quota_found_by_type_alone() -> None:
    body = {"error": {"message": "quota", "type": "insufficient_quota", "code": None}}
    assert not classify_response(429, {}, body).retry


def test_billing_hard_limit_is_never_retried() -> None:
    assert not classify_response(400, {}, {"error": {"code": "billing_hard_limit_reached"}}).retry


def test_request_too_large_for_the_limit_is_never_retried() -> None:
    verdict = classify_response(429, {"retry-after": "1"}, TOO_LARGE_BODY)
    assert not verdict.retry
    assert "larger than the whole limit" in verdict.reason


def test_x_should_retry_true_overrides_the_status() -> None:
    verdict = classify_response(400, {"x-should-retry": "true", "retry-after": "3"}, None)
    assert verdict.retry
    assert verdict.delay == 3.0


def test_x_should_retry_false_overrides_the_status() -> None:
    verdict = classify_response(503, {"x-should-retry": "false", "retry-after": "3"}, None)
    assert not verdict.retry
    assert verdict.delay is None


def test_other_x_should_retry_values_are_ignored() -> None:
    assert classify_response(503, {"x-should-retry": "maybe"}, None).retry
    assert not classify_response(400, {"x-should-retry": "maybe"}, None).retry


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (None, None),
        ("not json", None),
        ({"error": "flat string"}, None),
        ({"error": {"code": 429}}, None),
        ({"error": {"type": "server_error"}}, "server_error"),
        ({"code": "rate_limit_exceeded"}, "rate_limit_exceeded"),
        (QUOTA_BODY, "insufficient_quota"),
    ],
)
def test_error_code(body: object, code: str | None) -> None:
    assert error_code(body) == code


def test_non_string_messages_are_ignored() -> None:
    body = {"error": {"code": "rate_limit_exceeded", "message": ["Request too large"]}}
    assert classify_response(429, {}, body).retry


# -- openai SDK exceptions, built by hand on either httpx ------------------------------


def _response(
    http: ModuleType, status: int, body: object = None, headers: dict[str, str] | None = None
) -> Any:
    content = b"" if body is None else json.dumps(body).encode()
    return http.Response(
        status, headers=headers or {}, content=content, request=http.Request("POST", URL)
    )


def _status_error(
    http: ModuleType,
    cls: type[Exception],
    status: int,
    body: object = None,
    headers: dict[str, str] | None = None,
) -> Any:
    # The SDK keeps the inner ``error`` object as the exception's body.
    inner = body.get("error", body) if isinstance(body, dict) else body
    response = _response(http, status, body, headers)
    return cls("boom", response=response, body=inner)  # type: ignore[call-arg]


def test_sdk_rate_limit_error(http: ModuleType) -> None:
    exc = _status_error(http, openai.RateLimitError, 429, RATE_BODY, {"retry-after-ms": "1500"})
    assert classify_exception(exc) == Verdict(True, 1.5, "HTTP 429 rate_limit_exceeded")
    assert is_retryable(exc)
    assert delay_hint(exc) == 1.5


def test_sdk_insufficient_quota(http: ModuleType) -> None:
    exc = _status_error(http, openai.RateLimitError, 429, QUOTA_BODY, {"retry-after": "20"})
    assert exc.code == "insufficient_quota"
    assert not is_retryable(exc)
    assert delay_hint(exc) is None


@pytest.mark.parametrize(
    ("name", "status", "retry"),
    [
        ("InternalServerError", 500, True),
        ("InternalServerError", 503, True),
        ("ConflictError", 409, True),
        ("APIStatusError", 408, True),
        ("BadRequestError", 400, False),
        ("AuthenticationError", 401, False),
        ("PermissionDeniedError", 403, False),
        ("NotFoundError", 404, False),
        ("UnprocessableEntityError", 422, False),
    ],
)
def test_sdk_status_errors(http: ModuleType, name: str, status: int, retry: bool) -> None:
    exc = _status_error(http, getattr(openai, name), status, {"error": {"message": "x"}})
    assert is_retryable(exc) is retry


def test_sdk_x_should_retry(http: ModuleType) -> None:
    exc = _status_error(http, openai.BadRequestError, 400, None, {"x-should-retry": "true"})
    assert is_retryable(exc)
    exc = _status_error(http, openai.InternalServerError, 500, None, {"x-should-retry": "false"})
    assert not is_retryable(exc)


def test_sdk_error_without_json_body_reads_the_response(http: ModuleType) -> None:
    response = _response(http, 429, QUOTA_BODY)
    exc = openai.RateLimitError("boom", response=response, body=None)
    assert not is_retryable(exc)


def test_sdk_error_whose_body_is_not_json(http: ModuleType) -> None:
    response = http.Response(
        502, content=b"<html>bad gateway</html>", request=http.Request("GET", URL)
    )
    exc = openai.InternalServerError("boom", response=response, body="<html>bad gateway</html>")
    assert classify_exception(exc) == Verdict(True, None, "HTTP 502")


def test_sdk_connection_errors_and_timeouts(http: ModuleType) -> None:
    request = http.Request("POST", URL)
    connection = openai.APIConnectionError(request=request)
    timeout = openai.APITimeoutError(request=request)
    assert classify_exception(connection).reason == "connection error: APIConnectionError"
    assert classify_exception(timeout).reason == "timeout: APITimeoutError"
    assert is_retryable(connection)
    assert is_retryable(timeout)
    assert delay_hint(timeout) is None


def test_sdk_connection_error_that_can_never_heal(http: ModuleType) -> None:
    request = http.Request("POST", URL)
    exc = openai.APIConnectionError(request=request)
    exc.__cause__ = http.UnsupportedProtocol("Request URL is missing an 'http://' or 'https://'")
    verdict = classify_exception(exc)
    assert not verdict.retry
    assert "can never be sent" in verdict.reason


def test_sdk_validation_error_is_not_retried(http: ModuleType) -> None:
    exc = openai.APIResponseValidationError(_response(http, 200, {"odd": 1}), {"odd": 1})
    assert not is_retryable(exc)


def test_errors_the_sdk_raises_through_a_real_client() -> None:
    http = sdk_http()
    answers = iter(
        [
            (429, QUOTA_BODY, {}),
            (429, RATE_BODY, {"retry-after-ms": "40"}),
            (500, {"error": {"message": "boom", "type": "server_error"}}, {}),
            (400, {"error": {"message": "bad", "type": "invalid_request_error"}}, {}),
        ]
    )

    def handler(request: Any) -> Any:
        status, body, headers = next(answers)
        return http.Response(status, json=body, headers=headers)

    client = openai.OpenAI(
        base_url="http://sim.invalid/v1",
        api_key="sk-test",
        max_retries=0,
        http_client=http.Client(transport=http.MockTransport(handler)),
    )
    verdicts = []
    for _ in range(4):
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        verdicts.append(classify_exception(caught.value))
    client.close()
    assert [v.retry for v in verdicts] == [False, True, True, False]
    assert [v.delay for v in verdicts] == [None, 0.04, None, None]


# -- httpx and aiohttp exceptions -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "retry"),
    [
        ("ReadTimeout", True),
        ("ConnectTimeout", True),
        ("PoolTimeout", True),
        ("ConnectError", True),
        ("ReadError", True),
        ("WriteError", True),
        ("RemoteProtocolError", True),
        ("ProxyError", True),
        ("UnsupportedProtocol", False),
        ("LocalProtocolError", False),
        ("DecodingError", False),
    ],
)
def test_httpx_transport_errors(http: ModuleType, name: str, retry: bool) -> None:
    assert is_retryable(getattr(http, name)("x")) is retry


def test_httpx_status_error_with_a_read_body(http: ModuleType) -> None:
    response = _response(http, 429, QUOTA_BODY)
    exc = http.HTTPStatusError("429", request=response.request, response=response)
    assert not is_retryable(exc)
    response = _response(http, 429, RATE_BODY, {"retry-after": "2"})
    exc = http.HTTPStatusError("429", request=response.request, response=response)
    assert delay_hint(exc) == 2.0


def test_httpx_status_error_with_an_unread_body(http: ModuleType) -> None:
    async def body() -> Any:
        yield json.dumps(QUOTA_BODY).encode()

    response = http.Response(429, content=body(), request=http.Request("POST", URL))
    exc = http.HTTPStatusError("429", request=response.request, response=response)
    # The body cannot be read here: judged by its status alone.
    assert classify_exception(exc) == Verdict(True, None, "HTTP 429")


def test_aiohttp_response_error() -> None:
    aiohttp = pytest.importorskip("aiohttp")
    multidict = pytest.importorskip("multidict")
    headers = multidict.CIMultiDictProxy(multidict.CIMultiDict({"Retry-After": "7"}))
    exc = aiohttp.ClientResponseError(None, (), status=429, message="Too Many", headers=headers)
    assert classify_exception(exc) == Verdict(True, 7.0, "HTTP 429")
    exc = aiohttp.ClientResponseError(None, (), status=400, message="Bad")
    assert not is_retryable(exc)


@pytest.mark.parametrize(
    "make",
    [
        lambda aiohttp: aiohttp.ServerDisconnectedError(),
        lambda aiohttp: aiohttp.ClientPayloadError("Response payload is not completed"),
        lambda aiohttp: aiohttp.ServerTimeoutError("read timeout"),
        lambda aiohttp: aiohttp.ClientOSError(104, "Connection reset by peer"),
        lambda aiohttp: aiohttp.ClientConnectionError("closed"),
    ],
)
def test_aiohttp_transport_errors(make: Any) -> None:
    aiohttp = pytest.importorskip("aiohttp")
    assert is_retryable(make(aiohttp))


# -- anything else ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (TimeoutError("call took longer than its timeout"), True),
        (ConnectionResetError(104, "reset"), True),
        (BrokenPipeError(), True),
        (ValueError("bad"), False),
        (RuntimeError("bug"), False),
    ],
)
def test_builtin_exceptions(exc: Exception, retry: bool) -> None:
    assert is_retryable(exc) is retry


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(1), GeneratorExit()])
def test_base_exceptions_are_never_retried(exc: BaseException) -> None:
    verdict = classify_exception(exc)
    assert not verdict.retry
    assert "never retried" in verdict.reason
    assert delay_hint(exc) is None


class _Shaped(Exception):
    """An exception from some other client, recognised by its attributes alone."""

    def __init__(self, **attributes: Any) -> None:
        super().__init__("shaped")
        self.__dict__.update(attributes)


class _AiohttpLikeResponse:
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status = status
        self.headers = headers


def test_status_and_code_attributes_alone() -> None:
    assert not is_retryable(_Shaped(status_code=429, code="insufficient_quota"))
    assert is_retryable(_Shaped(status_code=429, code=None))
    assert is_retryable(_Shaped(status_code=429, code=429))


def test_status_from_a_response_with_a_status_attribute() -> None:
    exc = _Shaped(response=_AiohttpLikeResponse(503, {"retry-after": "1"}))
    assert classify_exception(exc) == Verdict(True, 1.0, "HTTP 503")
    exc = _Shaped(response=_AiohttpLikeResponse(404, {}))
    assert not is_retryable(exc)


def test_headers_on_the_exception_itself() -> None:
    exc = _Shaped(status=429, headers={"retry-after-ms": "10"})
    assert delay_hint(exc) == 0.01


def test_responses_without_json_or_status() -> None:
    class Response:
        json = None
        status_code = 500

    assert classify_exception(_Shaped(response=Response())) == Verdict(True, None, "HTTP 500")
    assert not is_retryable(_Shaped(response=object()))


@pytest.mark.parametrize("status", [True, "429", 200, 304, None])
def test_non_error_statuses_are_not_http_errors(status: object) -> None:
    assert not is_retryable(_Shaped(status_code=status))


def test_cyclic_causes_end() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__cause__, second.__cause__ = second, first
    assert not is_retryable(first)


# -- plugged into anyfan.Retry -----------------------------------------------------------


def test_openai_retry_decides_by_the_classification(http: ModuleType) -> None:
    policy = openai_retry()
    assert policy.attempts == 5
    quota = _status_error(http, openai.RateLimitError, 429, QUOTA_BODY, {"retry-after": "9"})
    decision = policy.decide(quota, attempt=1, elapsed=0.0, now=0.0)
    assert not decision.retry
    assert decision.reason == "not retryable"
    assert decision.pause is None
    limited = _status_error(http, openai.RateLimitError, 429, RATE_BODY, {"retry-after-ms": "800"})
    decision = policy.decide(limited, attempt=1, elapsed=0.0, now=0.0)
    assert decision.delay == 0.8
    assert decision.pause == 0.8  # the whole Fan holds new starts that long


def test_openai_retry_takes_other_options() -> None:
    policy = openai_retry(2, backoff=0.1, budget=None, retry_on=ValueError)
    assert policy.attempts == 2
    assert policy.budget is None
    assert policy.accepts(ValueError())
    assert not policy.accepts(TimeoutError())
