"""`fan`: a Fan configured for an OpenAI-compatible API in one line."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import operator
import re
import weakref
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any, Final, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from .._core import (
    Fan,
    Rate,
    RateStore,
    Retry,
    check_int,
    check_optional_number,
    check_seconds,
    note_sent,
    send_pending,
)
from ..blocking import Fan as BlockingFan
from ._classify import delay_hint, is_retryable, rejected_without_work
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

#: Seconds the SDK waits on a request (to send it, and between bytes of its answer)
#: before it fails with a timeout, which anyfan retries: ample for a long chat
#: completion, and far below the SDK's own 600 s, during which a hung request
#: would hold its slot.
DEFAULT_TIMEOUT: Final = 180.0

#: Attempts per request, the first included: the SDK's 2 retries, plus headroom
#: because anyfan's retries are budgeted and paced, not blind.
DEFAULT_ATTEMPTS = 5

Charge = Literal["reserved", "usage"]
C = TypeVar("C")


def request_limits(
    *,
    rpm: float | None = None,
    tpm: float | None = None,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    charge: Charge = "reserved",
    body: Callable[[Any], Mapping[str, Any]] | None = None,
    usage: Callable[[Any], Mapping[str, int] | None] | None = None,
    store: RateStore | None = None,
    key: str | None = None,
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
        store: Keep both quotas in this shared store (an
            `anyfan.redis.RedisStore`), so that every process using the same
            ``key`` shares them.
        key: The quota's name in the store (required with ``store``; see
            `quota_key`): the rates are ``{key}:rpm`` and ``{key}:tpm``, one hash tag.

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

    read_usage = usage or usage_of

    budget = default_max_tokens

    # Without ``body`` the items are the requests: no call to find each one.
    def cost(item: Any) -> int:
        return estimate_tokens(item if body is None else body(item), budget)

    def actual(item: Any, result: object) -> int:
        request = item if body is None else body(item)
        if isinstance(result, BaseException):
            return 0 if rejected_without_work(result) else estimate_tokens(request, budget)
        # A response that reports usage did the work: read that first, so the
        # common case never looks for a status.
        if charge == "usage":
            counts = read_usage(result)
            if counts is not None and "total_tokens" in counts:
                return counts["total_tokens"]
        elif usage is None:
            charged = charged_tokens(request, result, budget)
            if charged is not None:
                return charged
        else:
            counts = read_usage(result)
            prompt = None if counts is None else counts.get("prompt_tokens")
            if prompt is None and counts is not None:
                prompt = counts.get("input_tokens")  # the Responses API's name
            if prompt is not None:
                return prompt + max_output_tokens(request, budget)
        if rejected_without_work(result):
            return 0
        return estimate_tokens(request, budget)

    if store is not None and not isinstance(key, str):
        raise TypeError(f"a store needs key=, the quota's name (see quota_key), got {key!r}")
    tag = None if key is None else key if "{" in key else "{" + key + "}"
    requests = None
    if requests_per_minute is not None:
        requests = Rate(
            requests_per_minute,
            per=60,
            store=store,
            key=None if store is None else f"{tag}:rpm",
        )
    tokens = None
    if tokens_per_minute is not None:
        warm_up()  # tiktoken's encoding loads here, not in the first call's event loop
        tokens = Rate(
            tokens_per_minute,
            per=60,
            cost=cost,
            actual=actual,
            store=store,
            key=None if store is None else f"{tag}:tpm",
        )
    return requests, tokens


#: A dated snapshot's suffix (``-2024-08-06``, ``-0613``), left out of a model's family.
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


def quota_key(base_url: object = None, api_key: str | None = None, model: str | None = None) -> str:
    """The name of the provider quota that requests to ``base_url`` with ``api_key`` draw from.

    Providers count a key's requests and tokens per endpoint and, for OpenAI,
    per model family: ``openai:api.openai.com/v1:<hash>`` plus ``:gpt-4o`` when
    ``model`` is given (``gpt-4o-2024-08-06`` counts as ``gpt-4o``). The API
    key appears only as the first 12 hex digits of its SHA-256, never itself.
    Every process that computes the same name shares the quota.
    """
    parts = urlsplit(str(base_url or "https://api.openai.com/v1"))
    endpoint = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    endpoint += parts.path.rstrip("/")
    digest = hashlib.sha256((api_key or "").encode()).hexdigest()[:12]
    name = f"openai:{endpoint}:{digest}"
    if model:
        name += ":" + _SNAPSHOT.sub("", model)
    return name


def _client_quota_key(client: object, key: str | None, store: RateStore | None) -> str | None:
    """The quota name ``fan`` uses: the one given, or the client's endpoint and key."""
    if store is None or key is not None:
        return key
    return quota_key(getattr(client, "base_url", None), getattr(client, "api_key", None))


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


def _limits_and_retry(
    *,
    rpm: float | None,
    tpm: float | None,
    retry: Retry | Literal["default"] | None,
    default_max_tokens: int,
    charge: Charge,
    fan_options: dict[str, Any],
    store: RateStore | None = None,
    key: str | None = None,
) -> tuple[Rate | None, Rate | None]:
    """Fill ``fan_options`` with the limits and the retry policy; return the rates."""
    requests, tokens = request_limits(
        rpm=rpm,
        tpm=tpm,
        default_max_tokens=default_max_tokens,
        charge=charge,
        store=store,
        key=key,
    )
    own = [rate for rate in (requests, tokens) if rate is not None]
    fan_options["limits"] = [*fan_options.get("limits", ()), *own]
    fan_options["retry"] = _policy(retry)
    return requests, tokens


def _copyable(client: object) -> bool:
    return callable(getattr(client, "with_options", None))


def _capped(timeout: Any, most: float) -> Any:
    """The SDK ``timeout`` (seconds, an httpx ``Timeout`` or ``None``) at most ``most``.

    ``None`` when it is within ``most`` already. A ``Timeout`` keeps its own,
    shorter connect timeout.
    """
    if timeout is None:
        return most
    if isinstance(timeout, int | float):
        return most if timeout > most else None
    phases = [getattr(timeout, name, None) for name in ("read", "write", "pool")]
    if all(isinstance(phase, int | float) and phase <= most for phase in phases):
        return None
    connect = getattr(timeout, "connect", None)
    if isinstance(connect, int | float) and connect <= most:
        return type(timeout)(most, connect=connect)
    return type(timeout)(most)


def _as_timeout(client: object, timeout: Any) -> Any:
    """``timeout`` as the client's httpx ``Timeout`` where it is a number of seconds.

    The SDK hands its timeout to httpx for every request, and httpx makes a
    number into a ``Timeout`` through a runtime ``SupportsFloat`` protocol
    check, about 4 µs a request (measured); a ``Timeout`` is copied in a
    fraction of that. Left as it is for a client without an httpx client.
    """
    kind: Any = type(getattr(getattr(client, "_client", None), "timeout", None))
    if isinstance(timeout, int | float) and kind.__name__ == "Timeout":
        return kind(timeout)
    return timeout


def _adapt(
    client: C,
    *,
    owner: object,
    retries: bool,
    request_timeout: float | None,
    requests: Rate | None,
    tokens: Rate | None,
    calibrate: bool,
) -> C:
    """The client to call through: ``client`` itself, or a copy set up for anyfan.

    The copy (the SDK's ``with_options``) has the SDK's own retries off when
    anyfan retries, and its timeout capped at ``request_timeout``. The
    caller's client is never changed, and the copy shares its connection
    pool, so it costs no new connections.
    """
    if client is None:
        return client
    changes: dict[str, Any] = {}
    if retries and getattr(client, "max_retries", None):
        # The SDK would retry each attempt up to twice more, blind to the rate limits.
        changes["max_retries"] = 0
    if request_timeout is not None and hasattr(client, "timeout"):
        capped = _capped(client.timeout, request_timeout)
        if capped is not None:
            changes["timeout"] = _as_timeout(client, capped)
    if changes and _copyable(client):
        original = client
        client = getattr(client, "with_options")(**changes)  # noqa: B009 - typed as C
        _share_platform(original, client, owner)
    elif "max_retries" in changes:
        log.warning(
            "%s has no with_options(): its own retries (max_retries=%s) stay on, "
            "under anyfan's; build it with max_retries=0",
            type(client).__name__,
            getattr(client, "max_retries", None),
        )
    if requests is not None or tokens is not None:
        watch_sends(client)
        if calibrate:
            follow_headers(client, requests=requests, tokens=tokens)
    return client


#: The platform the SDK found, once any client or copy has: a process has one.
_found: list[Any] = []
#: Copies made before their SDK knew its platform, while they live.
_learning: weakref.WeakSet[Any] = weakref.WeakSet()


def _share_platform(original: object, copy: object, owner: object) -> None:
    """Give the SDK's copy the platform the SDK has found already, if any client has.

    The SDK finds its platform (for its ``X-Stainless-OS`` header) once per
    client, in a worker thread, on the first request: a fresh copy would do
    so again for every request it sends before the first one returns (up to
    a whole first wave, each a thread hop: 100 in a 600-request job,
    measured). The platform is the process's, so what any client found
    serves every copy. Until one has, a copy learns it alone, and tells the
    copies made after it: while it lives, and when ``owner`` (its Fan) goes.
    """
    if getattr(copy, "_platform", True) is not None:
        return  # not an SDK client, or one that knows already
    known = getattr(original, "_platform", None)
    if known is not None:
        _learned(known)
    else:
        known = _known_platform()
    if known is not None:
        setattr(copy, "_platform", known)  # noqa: B010 - the SDK's private cache
        return
    with contextlib.suppress(TypeError):  # a client that cannot be weakly referenced
        _learning.add(copy)
    # The Fan holds its copy anyway: this keeps it no longer than the Fan lives.
    weakref.finalize(owner, _learn_from, copy).atexit = False


def _known_platform() -> Any:
    """The platform the SDK found in this process, or ``None`` while no client knows it."""
    if not _found:
        for copy in list(_learning):
            _learn_from(copy)
    return _found[0] if _found else None


def _learn_from(copy: object) -> None:
    platform = getattr(copy, "_platform", None)
    if platform is not None:
        _learned(platform)


def _learned(platform: object) -> None:
    if not _found:
        _found.append(platform)
        _learning.clear()


class OpenAIFan(Fan, Generic[C]):
    """An `anyfan.Fan` set up for an OpenAI-compatible API, with the client to call through.

    Built by `fan`. Call the API through `client`: a copy of the caller's
    client with the SDK's own retries switched off (anyfan retries instead),
    so that no attempt is retried behind the limits' back, and its timeout
    capped (see `fan`).
    """

    def __init__(self, client: C, **options: Any) -> None:
        super().__init__(**options)
        self._client = client

    @property
    def client(self) -> C:
        """The client to call the API through (a copy of the one given, see `fan`)."""
        return self._client


def fan(
    client: Any = None,
    *,
    rpm: float | None = None,
    tpm: float | None = None,
    retry: Retry | Literal["default"] | None = "default",
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    charge: Charge = "reserved",
    calibrate: bool = True,
    request_timeout: float | None = DEFAULT_TIMEOUT,
    store: RateStore | None = None,
    key: str | None = None,
    **fan_options: Any,
) -> OpenAIFan[Any]:
    """Build a `Fan` set up for an OpenAI-compatible API.

    Items are request keyword dicts such as ``{"model": ..., "messages": [...],
    "max_tokens": ...}``; call the API through the returned Fan's ``client``::

        chat = anyfan.openai.fan(AsyncOpenAI(), rpm=500, tpm=200_000)

        async def ask(request):
            return await chat.client.chat.completions.create(**request)

        replies = await chat.map(ask, requests)

    It adds: retries with OpenAI's classification (see `openai_retry`),
    honouring ``retry-after-ms``/``retry-after`` and ``x-should-retry``; an RPM
    `Rate`; a TPM `Rate` whose cost is estimated from each request (prompt
    + output budget, see `estimate_tokens`) and settled from the response's
    ``usage``; and a timeout of `DEFAULT_TIMEOUT` seconds per request instead
    of the SDK's 600 s, during which a hung request would hold its slot.

    The ``client`` (an ``AsyncOpenAI`` or ``OpenAI``) is not changed:
    ``fan.client`` is a copy of it made with ``client.with_options(...)``,
    sharing its connections, with the SDK's own retries off (when anyfan
    retries, so that no attempt is retried twice) and its timeout capped at
    ``request_timeout`` (the SDK enforces it, at no cost to anyfan, and
    raises ``APITimeoutError``, which anyfan retries). Calls through the
    original client keep its settings. For an ``AsyncOpenAI``, the limits
    also follow the ``x-ratelimit-*`` headers of every response on those
    shared connections, in case other clients share the key.

    Without a client that has ``with_options`` (``client=None``, say), the
    Fan's own ``timeout`` defaults to ``request_timeout`` instead: each call
    then fails with `TimeoutError` past it, and is retried.

    Args:
        client: The openai client the calls will use, or ``None``.
        rpm: Requests per minute allowed, or ``None`` for no limit.
        tpm: Tokens per minute allowed, or ``None`` for no limit.
        retry: A `Retry`, ``None`` for no retries, or ``"default"`` for `openai_retry()`.
        default_max_tokens: Output tokens assumed for a chat request that sets no ``max_tokens``.
        charge: How a finished call is charged; see `request_limits`.
        calibrate: Whether to follow the provider's rate-limit headers.
        request_timeout: Most seconds the SDK waits on a request (connecting,
            sending, and between bytes of the answer), or ``None`` to keep the
            client's own. A client's shorter timeout is kept.
        store: Keep the RPM and TPM quotas in this shared store (an
            `anyfan.redis.RedisStore`): every process (web worker, job, Dask
            task) with the same ``key`` shares one quota.
        key: The quota's name in the store; by default `quota_key` of the
            client's ``base_url`` and ``api_key`` (a hash of the key, never the
            key). Give ``quota_key(..., model=...)`` to keep one quota per model family.
        **fan_options: Passed on to `anyfan.Fan` (``concurrency``, ``errors``,
            more ``limits``, and ``timeout``: a limit on each whole call, none
            by default).

    Raises:
        TypeError, ValueError: If an option is invalid; the message names it.
    """
    requests, tokens = _limits_and_retry(
        rpm=rpm,
        tpm=tpm,
        retry=retry,
        default_max_tokens=default_max_tokens,
        charge=charge,
        fan_options=fan_options,
        store=store,
        key=_client_quota_key(client, key, store),
    )
    request_timeout = check_seconds(request_timeout, name="request_timeout")
    if request_timeout is not None and not _copyable(client):
        fan_options.setdefault("timeout", request_timeout)
    built: OpenAIFan[Any] = OpenAIFan(None, **fan_options)  # checks the options first
    built._client = _adapt(
        client,
        owner=built,
        retries=fan_options["retry"] is not None,
        request_timeout=request_timeout,
        requests=requests,
        tokens=tokens,
        calibrate=calibrate,
    )
    return built


class OpenAIBlockingFan(BlockingFan, Generic[C]):
    """An `anyfan.blocking.Fan` set up for an OpenAI-compatible API; built by `blocking_fan`.

    Call the API through `client`. When the Fan made the client with a
    ``factory``, closing the Fan closes the client too.
    """

    def __init__(self, client: C, **options: Any) -> None:
        super().__init__(**options)
        self._client = client
        self._owns_client = False

    @property
    def client(self) -> C:
        """The client to call the API through (see `blocking_fan`)."""
        return self._client

    def close(self) -> None:
        """Close the client if the Fan made it, then the Fan (see `anyfan.blocking.Fan.close`)."""
        if self._owns_client and not self.closed:
            self._owns_client = False
            closing = getattr(self._client, "close", None)
            if closing is not None and inspect.iscoroutinefunction(closing):
                self.loop.call(closing)
            elif callable(closing):
                closing()
        super().close()


def blocking_fan(
    client: Any = None,
    *,
    factory: Callable[[], Any] | None = None,
    rpm: float | None = None,
    tpm: float | None = None,
    retry: Retry | Literal["default"] | None = "default",
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    charge: Charge = "reserved",
    calibrate: bool = True,
    request_timeout: float | None = DEFAULT_TIMEOUT,
    store: RateStore | None = None,
    key: str | None = None,
    **fan_options: Any,
) -> OpenAIBlockingFan[Any]:
    """Build an `anyfan.blocking.Fan` set up for an OpenAI-compatible API, for sync code.

    The same as `fan`, for code without an event loop of its own, in one of
    two ways:

    - a sync ``OpenAI`` client: its calls run in worker threads under the
      same limits and retries, so that
      ``fan.map(lambda req: fan.client.chat.completions.create(**req), requests)``
      is all there is to write;
    - ``factory=AsyncOpenAI`` (or any callable returning an async client): the
      Fan calls it once, inside its own event loop, and hands the client out
      as ``fan.client`` for async functions, which run on that loop. An async
      client belongs to the loop that first uses it, so this is the way to
      use one from sync code or a notebook whose cells also ``await``
      (see docs/how-to/jupyter.md). The Fan closes that client when it closes.

    Args:
        client: The openai client the calls will use, or ``None``.
        factory: Makes the client inside the Fan's loop, instead of ``client``.
        rpm: Requests per minute allowed, or ``None`` for no limit.
        tpm: Tokens per minute allowed, or ``None`` for no limit.
        retry: A `Retry`, ``None`` for no retries, or ``"default"`` for `openai_retry()`.
        default_max_tokens: Output tokens assumed for a chat request that sets no ``max_tokens``.
        charge: How a finished call is charged; see `request_limits`.
        calibrate: Whether an async client follows the provider's rate-limit
            headers (a sync client's responses are never followed).
        request_timeout: Most seconds the SDK waits on a request; see `fan`.
        store: Keep the quotas in this shared store; see `fan`.
        key: The quota's name in the store; see `fan` (with a ``factory``, give it).
        **fan_options: Passed on to `anyfan.blocking.Fan` (``concurrency``,
            ``backend``, ``timeout``, ...).

    Raises:
        TypeError, ValueError: If an option is invalid; the message names it.
    """
    if factory is not None and client is not None:
        raise TypeError("pass a client or a factory, not both")
    if factory is not None and not callable(factory):
        raise TypeError(f"factory must be a callable returning a client, got {factory!r}")
    requests, tokens = _limits_and_retry(
        rpm=rpm,
        tpm=tpm,
        retry=retry,
        default_max_tokens=default_max_tokens,
        charge=charge,
        fan_options=fan_options,
        store=store,
        key=_client_quota_key(client, key, store),
    )
    request_timeout = check_seconds(request_timeout, name="request_timeout")
    if request_timeout is not None and factory is None and not _copyable(client):
        fan_options.setdefault("timeout", request_timeout)
    built: OpenAIBlockingFan[Any] = OpenAIBlockingFan(None, **fan_options)
    if factory is not None:

        async def make() -> Any:
            return factory()

        try:
            client = built.loop.call(make)
        except BaseException:
            built.close()
            raise
        built._owns_client = True
    built._client = _adapt(
        client,
        owner=built,
        retries=fan_options["retry"] is not None,
        request_timeout=request_timeout,
        requests=requests,
        tokens=tokens,
        calibrate=calibrate,
    )
    return built


class _Done:
    """An awaitable that is done already: what the HTTP hooks return.

    httpx awaits each hook's return value. The hooks do all their work when
    called, so they return this rather than being coroutine functions: two
    coroutines a request fewer, each made, run and thrown away.
    """

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return iter(())  # type: ignore[return-value]  # finishes at once, with None


_DONE: Final = _Done()


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

    def __call__(self, response: Any) -> Awaitable[None]:
        requests = None if self._requests is None else self._requests()
        tokens = None if self._tokens is None else self._tokens()
        if requests is not None or tokens is not None:
            observe_rate_limits(response.headers, requests=requests, tokens=tokens)
        # Else its Fans are gone; the hook is pruned when the next one is installed.
        return _DONE


#: The headers that calibrate the rates, in the order `_calibration` returns them.
_CALIBRATION: Final = (
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)
_RAW: Final = tuple(name.encode() for name in _CALIBRATION)
_CALIBRATION_SLOTS: Final = {raw: slot for slot, raw in enumerate(_RAW)}
#: An httpx header entry's lower-cased name and its value.
_NAME: Final = operator.itemgetter(1)
_VALUE: Final = operator.itemgetter(2)


def _calibration(headers: Any) -> list[bytes | None] | None:
    """The `_CALIBRATION` headers' raw values (``None`` where absent) of httpx's headers.

    Every response goes through this, so httpx's headers are read once as
    received rather than searched four times: where their internal list of
    ``(raw, lower-cased, value)`` entries has that shape (httpx and httpx2
    both do), it becomes a dict of the lower-cased names in C, without a
    Python loop over the headers; else their public ``raw`` list is scanned.
    A repeated header counts with its last value. ``None`` for other headers
    (aiohttp's, a mapping), looked up by name instead.
    """
    entries = getattr(headers, "_list", None)
    if type(entries) is list and (not entries or len(entries[0]) == 3):
        return list(
            map(dict(zip(map(_NAME, entries), map(_VALUE, entries), strict=True)).get, _RAW)
        )
    slots = _CALIBRATION_SLOTS
    values: list[bytes | None] = [None, None, None, None]
    raw = getattr(headers, "raw", None)
    if not isinstance(raw, list):
        return None
    for key, value in raw:
        slot = slots.get(key.lower())
        if slot is not None:
            values[slot] = value
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
    # httpx's headers are read once as received; others are looked up by name.
    values = _calibration(headers)
    if requests is not None:
        _observe(requests, headers, values, 0, now)
    if tokens is not None:
        _observe(tokens, headers, values, 2, now)


def _observe(
    rate: Rate, headers: Any, values: list[bytes | None] | None, slot: int, now: float | None
) -> None:
    """`observe_rate_limits` for one rate: ``slot`` is its remaining header's in `_CALIBRATION`."""
    if values is None:
        left = header(headers, _CALIBRATION[slot])
        if left is None:
            return
    else:
        raw = values[slot]
        if raw is None:
            return  # no such header: the usual case with a provider that sends none
        left = raw.decode("latin-1")
    remaining = count(left)
    if remaining is not None and remaining < rate.rate:
        if values is None:
            reset = header(headers, _CALIBRATION[slot + 1])
        else:
            raw = values[slot + 1]
            reset = None if raw is None else raw.decode("latin-1")
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


#: The httpcore trace events that mark a request's headers going out (HTTP/1.1, HTTP/2).
_SENDING: Final = frozenset(
    {"http11.send_request_headers.started", "http2.send_request_headers.started"}
)


async def _trace(name: str, info: Any) -> None:
    """The ``trace`` extension of httpcore: the headers' write is when the request leaves.

    Once that is known, it takes itself off the request: httpcore would
    otherwise call it about ten times a request, twice per step (sending the
    body, receiving the headers and the body, closing), each a coroutine.
    """
    if name in _SENDING:
        note_sent()
        request = info.get("request") if type(info) is dict else None
        extensions = getattr(request, "extensions", None)
        if type(extensions) is dict and extensions.get("trace") is _trace:
            del extensions["trace"]


class _SendWatcher:
    """An httpx request hook that reports when each admitted request leaves.

    The delay from admission to sending keeps the slice guard of the Fan's
    rates wide enough (see `anyfan.Rate.report_delay`). Over httpx's own
    transports the moment is when httpcore writes the request's headers
    (its ``trace`` extension), which counts any wait for a connection and
    the event loop's backlog; over other transports (aiohttp's), it is
    when the hook runs, just before the transport takes the request.
    """

    __slots__ = ("_traced",)

    def __init__(self, traced: bool) -> None:
        self._traced = traced

    def __call__(self, request: Any) -> Awaitable[None]:
        # Outside a limited Fan, or for a request sent before (a redirect), nothing is reported.
        if not self._traced:
            note_sent()
        elif send_pending():
            extensions = getattr(request, "extensions", None)
            if isinstance(extensions, dict) and "trace" not in extensions:
                extensions["trace"] = _trace
            else:
                note_sent()
        return _DONE


def watch_sends(client: Any) -> bool:
    """Report when each request of an AsyncOpenAI client leaves, to the limits that admitted it.

    Installs one request hook on the client's async HTTP client (once, however
    many Fans share it); calls outside a limited Fan are left alone.

    Returns:
        Whether the client has the hook now (it needs an async httpx or httpx2 client).
    """
    http: Any = getattr(client, "_client", None)
    hooks = getattr(http, "event_hooks", None)
    if not isinstance(hooks, dict) or not inspect.iscoroutinefunction(getattr(http, "send", None)):
        return False
    installed = hooks.get("request", [])
    if any(isinstance(hook, _SendWatcher) for hook in installed):
        return True
    transport = getattr(http, "_transport", None)
    # httpx's own transport runs on httpcore, which honours the ``trace`` extension.
    kind = type(transport)
    traced = kind.__name__ == "AsyncHTTPTransport" and kind.__module__.startswith("httpx")
    hooks["request"] = [*installed, _SendWatcher(traced)]
    http.event_hooks = hooks
    return True
