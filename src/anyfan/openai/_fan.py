"""`fan`: a Fan configured for an OpenAI-compatible API in one line."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Any, Literal

from .._core._fan import Fan
from .._core._rate import Rate
from .._core._retry import Retry
from ._classify import delay_hint, is_retryable
from ._cost import DEFAULT_MAX_TOKENS, charged_tokens, estimate_tokens, usage_of
from ._headers import RateLimitHeaders

log = logging.getLogger("anyfan.openai")

#: Attempts per request, the first included: the SDK's 2 retries, plus headroom
#: because anyfan's retries are budgeted and paced, not blind.
DEFAULT_ATTEMPTS = 5


def request_limits(
    *,
    rpm: float | None = None,
    tpm: float | None = None,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    charge: Literal["reserved", "usage"] = "reserved",
) -> tuple[Rate | None, Rate | None]:
    """The RPM and TPM `Rate` objects for requests given as keyword dicts.

    ``charge="reserved"`` (OpenAI's rule) settles a call at its reported prompt
    tokens plus the ``max_tokens`` it reserved; ``"usage"`` settles at the
    tokens really used, for providers that bill only what was generated.
    """
    if charge not in ("reserved", "usage"):
        raise ValueError(f"charge must be 'reserved' or 'usage', got {charge!r}")

    def cost(request: Mapping[str, Any]) -> int:
        return estimate_tokens(request, default_max_tokens)

    def actual(request: Mapping[str, Any], result: object) -> int:
        if charge == "usage":
            usage = usage_of(result)
            if usage is not None and "total_tokens" in usage:
                return usage["total_tokens"]
        else:
            charged = charged_tokens(request, result, default_max_tokens)
            if charged is not None:
                return charged
        return cost(request)

    requests = None if rpm is None else Rate(rpm, per=60)
    tokens = None if tpm is None else Rate(tpm, per=60, cost=cost, actual=actual)
    return requests, tokens


def openai_retry(attempts: int = DEFAULT_ATTEMPTS, **options: Any) -> Retry:
    """A `Retry` with OpenAI's retry classification and Retry-After handling."""
    options.setdefault("retry_on", is_retryable)
    options.setdefault("delay_hint", delay_hint)
    return Retry(attempts, **options)


def fan(
    client: Any = None,
    *,
    rpm: float | None = None,
    tpm: float | None = None,
    retry: Retry | Literal["default"] | None = "default",
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    charge: Literal["reserved", "usage"] = "reserved",
    calibrate: bool = True,
    **fan_options: Any,
) -> Fan:
    """Build a `Fan` set up for an OpenAI-compatible API.

    Items are request keyword dicts such as ``{"model": ..., "messages": [...],
    "max_tokens": ...}``, so that ``await fan.map(ask, requests)`` with
    ``async def ask(req): return await client.chat.completions.create(**req)``
    is all there is to write.

    It adds: retries with OpenAI's classification (408, 409, 429 rate limits,
    5xx, connection errors and timeouts; never ``insufficient_quota`` or other
    4xx) honouring ``retry-after-ms``/``retry-after`` and ``x-should-retry``;
    an RPM `Rate` and a TPM `Rate` whose cost is estimated from each request
    (prompt + ``max_tokens``) and settled from the response's ``usage``.

    Given the ``client`` (an ``AsyncOpenAI`` or ``OpenAI``), it also sets its
    ``max_retries`` to 0 so that calls are not retried twice, and (for
    ``AsyncOpenAI``) corrects the local limits from the ``x-ratelimit-*``
    headers of every response, in case other clients share the key.

    Args:
        client: The openai client the calls will use, or ``None``.
        rpm: Requests per minute allowed, or ``None`` for no limit.
        tpm: Tokens per minute allowed, or ``None`` for no limit.
        retry: A `Retry`, ``None`` for no retries, or ``"default"`` for `openai_retry()`.
        default_max_tokens: Output tokens assumed for a request that sets no ``max_tokens``.
        charge: How a finished call is charged; see `request_limits`.
        calibrate: Whether to follow the provider's rate-limit headers.
        **fan_options: Passed on to `Fan` (``concurrency``, ``timeout``, ...).
    """
    requests, tokens = request_limits(
        rpm=rpm, tpm=tpm, default_max_tokens=default_max_tokens, charge=charge
    )
    limits = [*fan_options.pop("limits", ()), *(r for r in (requests, tokens) if r is not None)]
    policy = openai_retry() if retry == "default" else retry
    if client is not None:
        if policy is not None and getattr(client, "max_retries", None):
            client.max_retries = 0
        if calibrate and (requests is not None or tokens is not None):
            follow_headers(client, requests=requests, tokens=tokens)
    return Fan(limits=limits, retry=policy, **fan_options)


def follow_headers(client: Any, *, requests: Rate | None, tokens: Rate | None) -> bool:
    """Feed an AsyncOpenAI client's ``x-ratelimit-*`` response headers to the rates.

    Returns whether a hook could be installed: it needs the client's async
    HTTP client (httpx or httpx2) and its ``event_hooks``.
    """
    http: Any = getattr(client, "_client", None)
    hooks = getattr(http, "event_hooks", None)
    if not isinstance(hooks, dict) or not inspect.iscoroutinefunction(getattr(http, "send", None)):
        log.debug("not following rate-limit headers: no async HTTP client with event hooks")
        return False

    async def observe(response: Any) -> None:
        seen = RateLimitHeaders.parse(response.headers)
        if requests is not None and seen.remaining_requests is not None:
            requests.observe(seen.remaining_requests, seen.reset_requests)
        if tokens is not None and seen.remaining_tokens is not None:
            tokens.observe(seen.remaining_tokens, seen.reset_tokens)

    hooks.setdefault("response", []).append(observe)
    http.event_hooks = hooks
    return True
