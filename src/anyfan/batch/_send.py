"""Sending a batch job's requests through a `Fan`, and recording each final outcome.

`send` is what `anyfan.batch.run` and ``anyfan run`` use once the job is open.

The hot path is kept lean: each request's body goes out as the bytes it was
read as, each response body is written to the results as the bytes received,
and only the ``usage`` numbers are picked out of it, without decoding the
rest. Retries follow the OpenAI adapter's classification and ``Retry-After``;
the RPM and TPM limits are its `anyfan.openai.request_limits`, corrected by the
provider's ``x-ratelimit-*`` headers through `anyfan.openai.observe_rate_limits`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from .. import Fan, Rate
from ..openai import (
    DEFAULT_ATTEMPTS,
    classify_response,
    observe_rate_limits,
    openai_retry,
    request_limits,
)
from ..transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    HttpResponse,
    HttpStatusError,
    ResponseTooLarge,
    open_transport,
)
from ._causes import error_text
from ._parse import DEFAULT_URLS

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from .. import Outcome
    from .._core import RateStore
    from ..transport import ClientName
    from ._job import BatchJob
    from ._parse import BatchRequest

_REDACTED: Final = "[redacted]"


@dataclass(frozen=True)
class SendSettings:
    """How a job's requests are sent.

    Attributes:
        base_url: The API's base URL, such as ``https://api.openai.com/v1``.
        headers: Sent with every request; they hold the API key, so they are
            left out of the repr.
        concurrency: Most requests in flight at once (and connections open).
        rpm: Requests per minute allowed, or ``None``.
        tpm: Tokens per minute allowed, or ``None``.
        max_attempts: Most times a request is sent.
        timeout: Seconds one attempt may take, or ``None``.
        client: The HTTP client: ``"auto"``, ``"builtin"``, ``"aiohttp"`` or ``"httpx"``.
        secret: Text never to be written anywhere (the API key), left out of the repr.
        max_response_bytes: The largest response body read; past it the line
            fails with a ``response_too_large`` error.
        store: Keep the RPM and TPM quotas in this shared store (an
            `anyfan.redis.RedisStore`), so that several jobs share them.
        quota_key: The quota's name in ``store`` (see `anyfan.openai.quota_key`).
    """

    base_url: str
    headers: Mapping[str, str] = field(repr=False)
    concurrency: int = 100
    rpm: float | None = None
    tpm: float | None = None
    max_attempts: int = DEFAULT_ATTEMPTS
    timeout: float | None = 600.0
    client: ClientName = "auto"
    secret: str | None = field(default=None, repr=False)
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    store: RateStore | None = None
    quota_key: str | None = None


def endpoint_url(base_url: str, path: str) -> str:
    """Join the base URL and a Batch line's ``url`` (``/v1/...``) without doubling ``/v1``."""
    base = base_url.rstrip("/")
    if base.endswith("/v1") and path.startswith("/v1/"):
        return base + path[3:]
    return base + path


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced (a no-op without one)."""
    return text.replace(secret, _REDACTED) if secret else text


def number_after(raw: bytes, key: bytes) -> int | None:
    """The integer value of the last ``"key":`` in a JSON document, read without decoding it.

    Only a key can match: inside a JSON string a quote is escaped, so the
    quoted key never appears there as it is. ``None`` when absent.
    """
    at = raw.rfind(b'"' + key + b'"')
    if at < 0:
        return None
    i = at + len(key) + 2
    end = len(raw)
    while i < end and raw[i] in b" \t\r\n:":
        i += 1
    start = i
    while i < end and 48 <= raw[i] <= 57:
        i += 1
    return int(raw[start:i]) if i > start else None


def writable_as_is(raw: bytes) -> bool:
    """Whether a body can go into a result line verbatim: one line of UTF-8 holding an object.

    A cheap check of shape, not a full decode; anything else is decoded and
    re-encoded by the job.
    """
    if raw[:1] != b"{" or raw[-1:] != b"}" or b"\n" in raw or b"\r" in raw:
        return False
    if raw.isascii():
        return True
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def batch_limits(
    rpm: float | None,
    tpm: float | None,
    store: RateStore | None = None,
    key: str | None = None,
) -> tuple[Rate | None, Rate | None]:
    """The RPM and TPM rates for a job's lines: `anyfan.openai.request_limits` on their bodies.

    A line is charged its estimated prompt plus its ``max_tokens`` up front,
    then settled at the prompt tokens the response reports plus that same
    output budget, the way the provider charges. The prompt tokens are read
    from the raw body without decoding it. With a ``store``, both quotas live
    there under ``key``, shared with every other job using it.
    """
    return request_limits(rpm=rpm, tpm=tpm, body=_body_of, usage=_usage_of, store=store, key=key)


def _body_of(request: BatchRequest) -> Mapping[str, Any]:
    return request.body


def _usage_of(response: HttpResponse) -> dict[str, int] | None:
    prompt = number_after(response.body, b"prompt_tokens")
    return None if prompt is None else {"prompt_tokens": prompt}


def error_object(error: BaseException, secret: str | None) -> dict[str, str]:
    """The ``error`` recorded for a request that ended without a response."""
    if isinstance(error, ResponseTooLarge):
        code = "response_too_large"
    elif isinstance(error, TimeoutError):
        code = "timeout"
    elif isinstance(error, ConnectionError):
        code = "connection_error"
    else:
        code = "client_error"
    return {"code": code, "message": scrub(error_text(error), secret)}


def record_outcome(
    job: BatchJob, outcome: Outcome[BatchRequest, HttpResponse], secret: str | None
) -> None:
    """Write one request's final outcome to the job's results."""
    request, error = outcome.item, outcome.error
    if error is None:
        response = outcome.value
        assert response is not None
    elif isinstance(error, HttpStatusError):
        response = error.response
    else:
        job.record_error(
            request,
            error_object(error, secret),
            attempts=outcome.attempts,
            latency=outcome.elapsed,
        )
        return
    raw = response.body
    if writable_as_is(raw):
        job.record(
            request,
            response.status,
            None,
            raw=raw,
            tokens=number_after(raw, b"total_tokens") or 0,
            attempts=outcome.attempts,
            latency=outcome.elapsed,
        )
    else:
        job.record(
            request, response.status, raw, attempts=outcome.attempts, latency=outcome.elapsed
        )


def rejected_for_good(response: HttpResponse) -> bool:
    """Whether a 4xx response is final: the OpenAI adapter's classification would not retry it."""
    return not classify_response(response.status, response.headers, response.json()).retry


def admissible(
    job: BatchJob, pending: Iterator[BatchRequest], tokens: Rate
) -> Iterator[BatchRequest]:
    """The requests of ``pending`` the token limit could ever admit; the rest fail at once.

    A line estimated at more tokens than the limit allows in a whole period
    would wait forever (and hold the lines behind it): it is recorded as a
    ``cost_too_large`` error, naming its cost and the limit, and charged nothing.
    """
    limit = tokens.limit
    for request in pending:
        cost = tokens.cost_of(request)
        if cost > limit:
            job.record_error(
                request,
                {
                    "code": "cost_too_large",
                    "message": f"the request is estimated at {cost:,.0f} tokens, more than "
                    f"the limit admits in a whole period ({limit:,.0f} per {tokens.per:g} s): "
                    "lower its max_tokens or raise the limit",
                },
                attempts=0,
            )
        else:
            yield request


def make_fan(settings: SendSettings, *, timed: bool = True) -> tuple[Fan, Rate | None, Rate | None]:
    """The Fan that paces and retries the job's requests, and its two rates.

    ``timed=False`` leaves the timeout to the transport.
    """
    requests, tokens = batch_limits(settings.rpm, settings.tpm, settings.store, settings.quota_key)
    fan = Fan(
        settings.concurrency,
        timeout=settings.timeout if timed else None,
        limits=[rate for rate in (requests, tokens) if rate is not None],
        # No retry budget: in a batch job a request failed for good stays failed on a
        # rerun, so an outage must not turn retries into final errors. Backoff, the
        # shared pause on Retry-After and max_attempts bound the load instead.
        retry=openai_retry(settings.max_attempts, budget=None),
    )
    return fan, requests, tokens


async def send(job: BatchJob, settings: SendSettings) -> None:
    """Send every pending request of ``job`` and record its final outcome."""
    urls = {path: endpoint_url(settings.base_url, path) for path in DEFAULT_URLS}
    secret = settings.secret
    async with open_transport(
        settings.headers,
        settings.concurrency,
        client=settings.client,
        timeout=settings.timeout,
        max_response_bytes=settings.max_response_bytes,
    ) as http:
        fan, requests, tokens = make_fan(settings, timed=not http.handles_timeout)
        if requests is not None:  # the summary's rate leaves the first burst out of the pace
            job.counters.burst = requests.burst
        follow = requests is not None or tokens is not None
        post = http.post
        note_rate_limited = job.note_rate_limited

        async def attempt(request: BatchRequest) -> HttpResponse:
            response = await post(urls[request.url], request.body_bytes())
            if follow:
                observe_rate_limits(response.headers, requests=requests, tokens=tokens)
            status = response.status
            if 200 <= status < 300:
                return response
            if status == 429:
                note_rate_limited()
            elif 400 <= status < 500 and rejected_for_good(response):
                # Rejected without doing the work: final, and `actual` settles it at no cost.
                return response
            raise HttpStatusError(response)

        pending = job.pending()
        if tokens is not None:
            pending = admissible(job, pending, tokens)
        async with fan.stream(attempt, pending) as outcomes:
            async for outcome in outcomes:
                record_outcome(job, outcome, secret)
