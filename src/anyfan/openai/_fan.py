"""`fan`: a Fan configured for an OpenAI-compatible API in one line."""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

from .._core import Fan, Rate, Retry, check_int, check_optional_number
from ..blocking import Fan as BlockingFan
from ._classify import delay_hint, is_retryable
from ._cost import (
    DEFAULT_MAX_TOKENS,
    charged_tokens,
    estimate_tokens,
    max_output_tokens,
    usage_of,
    warm_up,
)
from ._headers import count, header, parse_go_duration

log = logging.getLogger("anyfan.openai")

#: Attempts per request, the first included: the SDK's 2 retries, plus headroom
#: because anyfan's retries are budgeted and paced, not blind.
DEFAULT_ATTEMPTS = 5

Charge = Literal["reserved", "usage"]


def request_limits(
    *,
    rpm: float | None = None,
    tpm: float | None = None,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    charge: Charge = "reserved",
    body: Callable[[Any], Mapping[str, Any]] | None = None,
    usage: Callable[[Any], Mapping[str, int] | None] | None = None,
) -> tuple[Rate | None, Rate | None]:
    """The RPM and TPM `Rate` objects for requests given as keyword dicts.

    The TPM rate charges each request its `estimate_tokens` up front and
    settles it from the response's ``usage`` once it returns. A response (or
    error, where the engine passes it) with a 4xx status other than 429 was
    rejected without doing the work, and is settled at no cost.
    ``charge="reserved"`` (OpenAI's rule) settles a call at its reported prompt
    tokens plus the output budget it reserved; ``"usage"`` settles at the
    tokens really used, for providers that bill only what was generated.

    Args:
        rpm: Requests per minute, or ``None`` for no request limit.
        tpm: Tokens per minute, or ``None`` for no token limit.
        default_max_tokens: Output budget of a chat request that sets no ``max_tokens``.
        charge: How a finished call is charged: ``"reserved"`` or ``"usage"``.
        body: Turns an item into its request's keyword dict, when items are
            something else (`anyfan.batch` passes its lines this way).
        usage: Reads a result's ``usage`` counts (``prompt_tokens``,
            ``total_tokens``, ...), or ``None`` where it has none; by default
            from an SDK response or a dict.

    Returns:
        ``(requests, tokens)``: each a `Rate`, or ``None`` where no limit was given.

    Raises:
        TypeError: If a limit is not a number or ``default_max_tokens`` not an int.
        ValueError: If a limit is not positive and finite, ``default_max_tokens``
            is negative, or ``charge`` is unknown.
    """
    requests_per_minute = check_optional_number(rpm, "rpm")
    tokens_per_minute = check_optional_number(tpm, "tpm")
    check_int(default_max_tokens, "default_max_tokens")
    if charge not in ("reserved", "usage"):
        raise ValueError(f"charge must be 'reserved' or 'usage', got {charge!r}")

    as_body = body or _identity
    read_usage = usage or usage_of

    def cost(item: Any) -> int:
        return estimate_tokens(as_body(item), default_max_tokens)

    def actual(item: Any, result: object) -> int:
        if _rejected(result):
            return 0
        request = as_body(item)
        if charge == "usage":
            counts = read_usage(result)
            if counts is not None and "total_tokens" in counts:
                return counts["total_tokens"]
        elif usage is None:
            charged = charged_tokens(request, result, default_max_tokens)
            if charged is not None:
                return charged
        else:
            counts = read_usage(result)
            prompt = None if counts is None else counts.get("prompt_tokens")
            if prompt is None and counts is not None:
                prompt = counts.get("input_tokens")  # the Responses API's name
            if prompt is not None:
                return prompt + max_output_tokens(request, default_max_tokens)
        return estimate_tokens(request, default_max_tokens)

    requests = None if requests_per_minute is None else Rate(requests_per_minute, per=60)
    tokens = None
    if tokens_per_minute is not None:
        warm_up()  # tiktoken's encoding loads here, not in the first call's event loop
        tokens = Rate(tokens_per_minute, per=60, cost=cost, actual=actual)
    return requests, tokens


def _rejected(result: object) -> bool:
    """Whether ``result`` is an HTTP 4xx other than 429: rejected without doing the work."""
    status = getattr(result, "status_code", None)
    return type(status) is int and 400 <= status < 500 and status != 429


def _identity(item: Any) -> Any:
    return item


def openai_retry(attempts: int = DEFAULT_ATTEMPTS, **options: Any) -> Retry:
    """A `Retry` with OpenAI's retry classification and Retry-After handling.

    Retried: 408, 409, 429 rate limits, 5xx, connection errors and timeouts.
    Never: ``insufficient_quota``, requests too large for the limit, other
    4xx. The delay the server asks for (``retry-after-ms``, ``retry-after``)
    is honoured and pauses new starts on the whole Fan.

    Args:
        attempts: Most attempts per request, the first included.
        **options: Any other option of `anyfan.Retry` (``backoff``, ``budget``, ...).
    """
    options.setdefault("retry_on", is_retryable)
    options.setdefault("delay_hint", delay_hint)
    return Retry(attempts, **options)


def _policy(retry: Retry | Literal["default"] | None) -> Retry | None:
    if retry == "default":
        return openai_retry()
    if retry is None or isinstance(retry, Retry):
        return retry
    raise TypeError(f"retry must be an anyfan.Retry, 'default' or None, got {retry!r}")


def _configure(
    client: Any,
    *,
    rpm: float | None,
    tpm: float | None,
    retry: Retry | Literal["default"] | None,
    default_max_tokens: int,
    charge: Charge,
    calibrate: bool,
    fan_options: dict[str, Any],
) -> None:
    """Fill ``fan_options`` with the limits and retry policy; adjust ``client`` to match."""
    requests, tokens = request_limits(
        rpm=rpm, tpm=tpm, default_max_tokens=default_max_tokens, charge=charge
    )
    own = [rate for rate in (requests, tokens) if rate is not None]
    fan_options["limits"] = [*fan_options.get("limits", ()), *own]
    policy = fan_options["retry"] = _policy(retry)
    if client is None:
        return
    if policy is not None and getattr(client, "max_retries", None):
        # The SDK would retry each attempt up to twice more, blind to the rate limits.
        log.debug("setting max_retries=0 on %s: anyfan retries instead", type(client).__name__)
        client.max_retries = 0
    if calibrate and own:
        follow_headers(client, requests=requests, tokens=tokens)


def fan(
    client: Any = None,
    *,
    rpm: float | None = None,
    tpm: float | None = None,
    retry: Retry | Literal["default"] | None = "default",
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    charge: Charge = "reserved",
    calibrate: bool = True,
    **fan_options: Any,
) -> Fan:
    """Build a `Fan` set up for an OpenAI-compatible API.

    Items are request keyword dicts such as ``{"model": ..., "messages": [...],
    "max_tokens": ...}``, so that ``await fan.map(ask, requests)`` with
    ``async def ask(req): return await client.chat.completions.create(**req)``
    is all there is to write.

    It adds: retries with OpenAI's classification (see `openai_retry`),
    honouring ``retry-after-ms``/``retry-after`` and ``x-should-retry``; an RPM
    `Rate`; and a TPM `Rate` whose cost is estimated from each request (prompt
    + output budget, see `estimate_tokens`) and settled from the response's
    ``usage``.

    Given the ``client`` (an ``AsyncOpenAI`` or ``OpenAI``), it also sets the
    client's ``max_retries`` to 0 when anyfan retries, so that no call is
    retried twice (this holds for every use of that client), and, for an
    ``AsyncOpenAI``, corrects the local limits from the ``x-ratelimit-*``
    headers of every response, in case other clients share the key.

    Args:
        client: The openai client the calls will use, or ``None``.
        rpm: Requests per minute allowed, or ``None`` for no limit.
        tpm: Tokens per minute allowed, or ``None`` for no limit.
        retry: A `Retry`, ``None`` for no retries, or ``"default"`` for `openai_retry()`.
        default_max_tokens: Output tokens assumed for a chat request that sets no ``max_tokens``.
        charge: How a finished call is charged; see `request_limits`.
        calibrate: Whether to follow the provider's rate-limit headers.
        **fan_options: Passed on to `anyfan.Fan` (``concurrency``, ``timeout``,
            ``errors``, more ``limits``).

    Raises:
        TypeError, ValueError: If an option is invalid; the message names it.
    """
    _configure(
        client,
        rpm=rpm,
        tpm=tpm,
        retry=retry,
        default_max_tokens=default_max_tokens,
        charge=charge,
        calibrate=calibrate,
        fan_options=fan_options,
    )
    return Fan(**fan_options)


def blocking_fan(
    client: Any = None,
    *,
    rpm: float | None = None,
    tpm: float | None = None,
    retry: Retry | Literal["default"] | None = "default",
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    charge: Charge = "reserved",
    **fan_options: Any,
) -> BlockingFan:
    """Build an `anyfan.blocking.Fan` set up for an OpenAI-compatible API, for sync code.

    The same as `fan`, for the synchronous ``OpenAI`` client: its calls run in
    worker threads under the same limits and retries, so that
    ``fan.map(lambda req: client.chat.completions.create(**req), requests)``
    is all there is to write. The sync client's responses are not followed
    for rate-limit headers.

    Args:
        client: The openai client the calls will use, or ``None``.
        rpm: Requests per minute allowed, or ``None`` for no limit.
        tpm: Tokens per minute allowed, or ``None`` for no limit.
        retry: A `Retry`, ``None`` for no retries, or ``"default"`` for `openai_retry()`.
        default_max_tokens: Output tokens assumed for a chat request that sets no ``max_tokens``.
        charge: How a finished call is charged; see `request_limits`.
        **fan_options: Passed on to `anyfan.blocking.Fan` (``concurrency``,
            ``backend``, ``timeout``, ...).

    Raises:
        TypeError, ValueError: If an option is invalid; the message names it.
    """
    _configure(
        client,
        rpm=rpm,
        tpm=tpm,
        retry=retry,
        default_max_tokens=default_max_tokens,
        charge=charge,
        calibrate=False,
        fan_options=fan_options,
    )
    return BlockingFan(**fan_options)


class _HeaderObserver:
    """An httpx response hook that feeds ``x-ratelimit-*`` headers to two rates.

    It holds the rates weakly, so that a client outliving its Fans does not
    keep them alive; hooks whose rates are gone are pruned when a new one is
    installed.
    """

    __slots__ = ("_requests", "_tokens")

    def __init__(self, requests: Rate | None, tokens: Rate | None) -> None:
        self._requests = None if requests is None else weakref.ref(requests)
        self._tokens = None if tokens is None else weakref.ref(tokens)

    @property
    def alive(self) -> bool:
        """Whether any of its rates still exists."""
        return any(ref is not None and ref() is not None for ref in (self._requests, self._tokens))

    async def __call__(self, response: Any) -> None:
        requests = None if self._requests is None else self._requests()
        tokens = None if self._tokens is None else self._tokens()
        if requests is None and tokens is None:
            return  # its Fans are gone; the hook is pruned when the next one is installed
        observe_rate_limits(response.headers, requests=requests, tokens=tokens)


#: The headers that calibrate the rates, in the order `_calibration` returns them.
_CALIBRATION: Final = (
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)
_CALIBRATION_SLOTS: Final = {name.encode(): slot for slot, name in enumerate(_CALIBRATION)}


def _calibration(headers: Any) -> list[str | None]:
    """The `_CALIBRATION` headers' values (``None`` where absent), from httpx's raw list.

    Every response goes through this, so httpx's headers are scanned once as
    received rather than searched four times.
    """
    values: list[str | None] = [None, None, None, None]
    for key, value in headers.raw:
        slot = _CALIBRATION_SLOTS.get(key.lower())
        if slot is not None:
            values[slot] = value.decode("latin-1")
    return values


def observe_rate_limits(
    headers: Any, *, requests: Rate | None, tokens: Rate | None, now: float | None = None
) -> None:
    """Correct the rates from one response's ``x-ratelimit-*`` headers.

    The one rule for when headers correct a `Rate` (every caller in anyfan
    uses this function): a response corrects a rate only when its
    ``remaining`` header says less than one second's share of that rate is
    left (``remaining < rate.rate``). Then `anyfan.Rate.observe` takes in
    ``remaining`` and ``reset`` and holds admissions back as far as the
    provider's count requires. Above that the local pacing is the stricter
    one, so nothing changes, and a long ``reset`` with plenty left (a
    per-day window, say) cannot stall a per-minute pace. Missing or
    malformed headers are skipped.

    Args:
        headers: The response's headers (httpx, aiohttp, or a mapping).
        requests: The RPM rate, or ``None``.
        tokens: The TPM rate, or ``None``.
        now: When the response arrived; by default the event loop's clock.
    """
    # httpx's headers are scanned once as received; others are looked up by name.
    values = _calibration(headers) if isinstance(getattr(headers, "raw", None), list) else None
    if requests is not None:
        _observe(requests, headers, values, 0, now)
    if tokens is not None:
        _observe(tokens, headers, values, 2, now)


def _observe(
    rate: Rate, headers: Any, values: list[str | None] | None, slot: int, now: float | None
) -> None:
    """`observe_rate_limits` for one rate: ``slot`` is its remaining header's in `_CALIBRATION`."""
    left = header(headers, _CALIBRATION[slot]) if values is None else values[slot]
    if left is None:
        return
    remaining = count(left)
    if remaining is not None and remaining < rate.rate:
        reset = header(headers, _CALIBRATION[slot + 1]) if values is None else values[slot + 1]
        rate.observe(remaining, None if reset is None else parse_go_duration(reset), now=now)


def follow_headers(client: Any, *, requests: Rate | None, tokens: Rate | None) -> bool:
    """Feed an AsyncOpenAI client's ``x-ratelimit-*`` response headers to the rates.

    Every response the client receives, through a Fan or not, then corrects
    the rates' view of the quota (see `anyfan.Rate.observe`), so that
    admissions never outrun the provider when other clients share the key.

    Returns:
        Whether a hook was installed. It needs the client's async HTTP client
        (httpx or httpx2) and its ``event_hooks``; a sync ``OpenAI`` client
        is left alone, as its hooks would run outside the Fan's event loop.
    """
    http: Any = getattr(client, "_client", None)
    hooks = getattr(http, "event_hooks", None)
    if not isinstance(hooks, dict) or not inspect.iscoroutinefunction(getattr(http, "send", None)):
        log.debug("not following rate-limit headers: no async HTTP client with event hooks")
        return False
    kept = [
        hook
        for hook in hooks.get("response", [])
        if not (isinstance(hook, _HeaderObserver) and not hook.alive)
    ]
    hooks["response"] = [*kept, _HeaderObserver(requests, tokens)]
    http.event_hooks = hooks
    return True
