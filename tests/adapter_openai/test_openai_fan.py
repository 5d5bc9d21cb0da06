"""`anyfan.openai.fan` and its parts: limits, retries, the SDK's own retries, header hooks."""

from __future__ import annotations

import gc
import math
import weakref
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from openai_helpers import SSE_GENERATOR_WARNING, sdk_http

import anyfan
import anyfan.openai as ao
from anyfan import Rate, Retry
from anyfan._core._rate import Limits
from anyfan.openai._fan import _HeaderObserver

openai = pytest.importorskip("openai")

REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "abcdefgh"}]}
HEADERS = {
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-remaining-requests": "7",
    "x-ratelimit-reset-requests": "1m50s",
    "x-ratelimit-limit-tokens": "20000",
    "x-ratelimit-remaining-tokens": "150",
    "x-ratelimit-reset-tokens": "55.5s",
}


def _async_client(**options: Any) -> Any:
    return openai.AsyncOpenAI(base_url="http://sim.invalid/v1", api_key="sk-test", **options)


def _sync_client(**options: Any) -> Any:
    return openai.OpenAI(base_url="http://sim.invalid/v1", api_key="sk-test", **options)


def _observers(client: Any) -> list[Any]:
    hooks = client._client.event_hooks.get("response", [])
    return [hook for hook in hooks if isinstance(hook, _HeaderObserver)]


@pytest.fixture
def observed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float, float | None]]:
    """Every `Rate.observe` call, as (rate name, remaining, reset)."""
    calls: list[tuple[str, float, float | None]] = []

    def observe(self: Rate, remaining: float, reset: float | None = None, **_: Any) -> None:
        calls.append((self.name, remaining, reset))

    monkeypatch.setattr(Rate, "observe", observe)
    return calls


# -- the Fan it builds ---------------------------------------------------------------------


def test_fan_builds_rpm_and_tpm_limits() -> None:
    fan = ao.fan(rpm=500, tpm=200_000, concurrency=8)
    assert isinstance(fan, anyfan.Fan)
    assert fan.concurrency == 8
    requests, tokens = fan.limits
    assert (requests.name, tokens.name) == ("500/60s", "200000/60s")
    assert requests.cost_of(REQUEST) == 1
    assert tokens.cost_of(REQUEST) == ao.estimate_tokens(REQUEST) == 3 + 4 + 2 + 256


def test_fan_without_limits() -> None:
    assert ao.fan().limits == ()
    assert [r.name for r in ao.fan(rpm=60).limits] == ["60/60s"]
    assert [r.name for r in ao.fan(tpm=1e6).limits] == ["1e+06/60s"]


def test_fan_keeps_the_limits_given_first() -> None:
    own = Rate(10)
    fan = ao.fan(rpm=60, limits=[own])
    assert fan.limits[0] is own
    assert [r.name for r in fan.limits] == ["10/1s", "60/60s"]


def test_default_max_tokens_reaches_the_estimate() -> None:
    (tokens,) = ao.fan(tpm=1000, default_max_tokens=10).limits
    assert tokens.cost_of(REQUEST) == 9 + 10


def test_fan_retries_the_openai_way_by_default() -> None:
    policy = ao.fan().retry
    assert policy is not None
    assert policy.attempts == 5
    assert policy.retry_on is ao.is_retryable
    assert policy.delay_hint is ao.delay_hint


def test_fan_takes_a_retry_policy_or_none() -> None:
    mine = Retry(2)
    assert ao.fan(retry=mine).retry is mine
    assert ao.fan(retry=None).retry is None


@pytest.mark.parametrize("bad", [True, 3, "sometimes"])
def test_fan_rejects_other_retry_values(bad: object) -> None:
    with pytest.raises(TypeError, match=r"retry must be an anyfan\.Retry, 'default' or None"):
        ao.fan(retry=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["rpm", "tpm"])
@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (0, ValueError, "must be a positive, finite number"),
        (-5, ValueError, "must be a positive, finite number"),
        (math.nan, ValueError, "must be a positive, finite number"),
        (math.inf, ValueError, "must be a positive, finite number"),
        (True, TypeError, "must be a number or None"),
        ("500", TypeError, "must be a number or None"),
    ],
)
def test_limits_are_checked_by_name(
    name: str, bad: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=f"{name} {message}"):
        ao.request_limits(**{name: bad})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (-1, ValueError, "must be at least 0"),
        (True, TypeError, "must be an int"),
        (1.5, TypeError, "must be an int"),
    ],
)
def test_default_max_tokens_is_checked(bad: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=f"default_max_tokens {message}"):
        ao.fan(tpm=1000, default_max_tokens=bad)  # type: ignore[arg-type]


def test_charge_is_checked() -> None:
    with pytest.raises(ValueError, match="charge must be 'reserved' or 'usage'"):
        ao.request_limits(tpm=1000, charge="all")  # type: ignore[arg-type]


def test_tokenizer_loads_when_the_limits_are_built(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[bool] = []

    def warm_up() -> bool:
        loads.append(True)
        return False

    monkeypatch.setattr(ao._fan, "warm_up", warm_up)
    ao.request_limits(rpm=10)
    assert loads == []
    ao.request_limits(tpm=10)
    assert loads == [True]


# -- settling the TPM charge ---------------------------------------------------------------


def test_reserved_charge_settles_at_the_reported_prompt_plus_budget() -> None:
    _, tokens = ao.request_limits(tpm=1000)
    assert tokens is not None
    request = {**REQUEST, "max_tokens": 20}
    reply = {"usage": {"prompt_tokens": 40, "completion_tokens": 3, "total_tokens": 43}}
    assert tokens.actual_of(request, reply) == 40 + 20
    assert tokens.actual_of(request, "a streamed text, no usage") == 9 + 20


def test_usage_charge_settles_at_the_tokens_used() -> None:
    _, tokens = ao.request_limits(tpm=1000, charge="usage")
    assert tokens is not None
    request = {**REQUEST, "max_tokens": 20}
    reply = {"usage": {"prompt_tokens": 40, "completion_tokens": 3, "total_tokens": 43}}
    assert tokens.actual_of(request, reply) == 43
    assert tokens.actual_of(request, {"usage": {"prompt_tokens": 40}}) == 9 + 20


# -- the client ------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [_async_client, _sync_client])
def test_sdk_retries_are_off_in_a_copy_and_the_callers_client_is_unchanged(make: Any) -> None:
    client = make()
    fan = ao.fan(client)
    assert client.max_retries == 2
    assert fan.client is not client
    assert fan.client.max_retries == 0
    assert fan.client._client is client._client  # the same connection pool
    client.close() if make is _sync_client else None


def test_sdk_retries_stay_when_anyfan_does_not_retry() -> None:
    client = _sync_client(max_retries=4)
    fan = ao.fan(client, retry=None)
    assert fan.client.max_retries == 4
    assert client.max_retries == 4
    client.close()


def test_a_client_without_max_retries_is_left_alone() -> None:
    client = SimpleNamespace()
    assert ao.fan(client, rpm=10).client is client
    assert vars(client) == {}
    assert ao.fan().client is None


def test_a_client_without_with_options_keeps_its_retries_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = SimpleNamespace(max_retries=2)
    with caplog.at_level("WARNING", logger="anyfan.openai"):
        assert ao.fan(client).client is client
    assert client.max_retries == 2
    assert "has no with_options()" in caplog.text


def test_the_copy_caps_the_sdks_timeout() -> None:
    client = _async_client()
    fan = ao.fan(client)
    assert client.timeout.read == 600  # the SDK's default, left alone
    assert fan.client.timeout.read == ao.DEFAULT_TIMEOUT
    assert fan.client.timeout.connect == client.timeout.connect
    assert "timeout=None" in repr(fan)  # the SDK enforces it: nothing per call in anyfan
    assert ao.fan(client, request_timeout=30).client.timeout.read == 30
    assert ao.fan(client, request_timeout=None, retry=None).client is client


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [
        (None, 180.0),
        (600.0, 180.0),
        (30.0, 30.0),  # a shorter timeout of the caller's is kept
    ],
)
def test_a_float_or_missing_timeout_is_capped(timeout: float | None, expected: float) -> None:
    client = _sync_client(timeout=timeout, max_retries=0)
    fan = ao.fan(client, retry=None)
    if timeout == expected:
        assert fan.client is client
    else:
        # A Timeout, which httpx copies on each request, where a float is converted.
        assert fan.client.timeout == openai.Timeout(expected)
    client.close()


def test_a_number_of_seconds_becomes_the_clients_own_timeout_class() -> None:
    from anyfan.openai._fan import _as_timeout

    client = _async_client()
    assert _as_timeout(client, 30) == openai.Timeout(30)
    assert _as_timeout(client, openai.Timeout(30)) == openai.Timeout(30)
    assert _as_timeout(SimpleNamespace(), 30) == 30  # no httpx client: left as it is


def test_a_timeout_object_keeps_a_short_connect_and_is_replaced_when_long() -> None:
    timeout = openai.Timeout(600, connect=500)
    client = _async_client(timeout=timeout)
    assert ao.fan(client).client.timeout == openai.Timeout(ao.DEFAULT_TIMEOUT)
    short = _async_client(timeout=openai.Timeout(10, connect=2))
    assert ao.fan(short, retry=None).client is short


def test_without_a_client_to_copy_the_fan_times_each_call() -> None:
    assert f"timeout={ao.DEFAULT_TIMEOUT!r}" in repr(ao.fan())
    assert "timeout=None" in repr(ao.fan(timeout=None))
    assert "timeout=None" in repr(ao.fan(request_timeout=None))
    assert "timeout=5" in repr(ao.fan(timeout=5))
    with ao.blocking_fan() as fan:
        assert f"timeout={ao.DEFAULT_TIMEOUT!r}" in repr(fan)
    with pytest.raises(ValueError, match="request_timeout must be a positive"):
        ao.fan(request_timeout=0)


@pytest.mark.anyio
async def test_a_call_past_the_timeout_fails_and_frees_its_slot() -> None:
    fan = ao.fan(timeout=0.01, retry=None, concurrency=1, errors="return")

    async def hang(request: dict[str, Any]) -> None:
        await anyio.sleep_forever()

    (error,) = await fan.map(hang, [REQUEST])
    assert isinstance(error, TimeoutError)
    assert fan.in_flight == 0


def test_header_hook_on_the_async_client() -> None:
    client = _async_client()
    fan = ao.fan(client, rpm=500, tpm=20_000)
    assert len(_observers(client)) == 1
    assert fan.limits


def test_no_header_hook_on_the_sync_client() -> None:
    client = _sync_client()
    ao.fan(client, rpm=500, tpm=20_000)
    assert client._client.event_hooks["response"] == []
    client.close()


def test_no_header_hook_without_limits_or_when_asked() -> None:
    client = _async_client()
    ao.fan(client)
    ao.fan(client, rpm=10, calibrate=False)
    assert _observers(client) == []


def test_follow_headers_needs_an_async_http_client() -> None:
    rate = Rate(10)
    assert not ao.follow_headers(object(), requests=rate, tokens=None)
    fake = SimpleNamespace(_client=SimpleNamespace(event_hooks=[], send=None))
    assert not ao.follow_headers(fake, requests=rate, tokens=None)


def test_hooks_of_dead_fans_are_pruned_and_others_kept() -> None:
    async def mine(response: Any) -> None: ...

    client = _async_client()
    client._client.event_hooks = {"request": [], "response": [mine]}
    for _ in range(5):
        ao.fan(client, rpm=10)
        gc.collect()
    kept = ao.fan(client, rpm=10)
    hooks = client._client.event_hooks["response"]
    assert hooks[0] is mine
    assert len(_observers(client)) == 1
    assert kept.limits  # the live one's hook is the one kept


def test_hooks_of_live_fans_are_kept() -> None:
    client = _async_client()
    fans = [ao.fan(client, rpm=10), ao.fan(client, tpm=1000)]
    assert len(_observers(client)) == 2
    assert all(fan.limits for fan in fans)


@pytest.mark.anyio
async def test_observer_feeds_both_rates(
    observed: list[tuple[str, float, float | None]],
) -> None:
    requests, tokens = Rate(500, per=60), Rate(20_000, per=60)
    observer = _HeaderObserver(requests, tokens)
    await observer(SimpleNamespace(headers=HEADERS))
    assert observed == [("500/60s", 7, 110.0), ("20000/60s", 150, 55.5)]
    observed.clear()
    await observer(SimpleNamespace(headers={"x-ratelimit-remaining-requests": "3"}))
    assert observed == [("500/60s", 3, None)]


@pytest.mark.anyio
async def test_observer_with_one_rate_or_none_left(
    observed: list[tuple[str, float, float | None]],
) -> None:
    tokens = Rate(20_000, per=60)
    await _HeaderObserver(None, tokens)(SimpleNamespace(headers=HEADERS))
    assert observed == [("20000/60s", 150, 55.5)]
    gone = _HeaderObserver(Rate(1), None)  # its rate is collected at once
    gc.collect()
    assert not gone.alive
    await gone(SimpleNamespace(headers=HEADERS))
    assert len(observed) == 1


class _RawOnly:
    """Headers offering only httpx's public ``raw`` list, as an httpx-like client might."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.raw = [(key.title().encode(), value.encode()) for key, value in headers.items()]

    def get(self, name: str) -> str | None:  # pragma: no cover - never needed: raw is read
        raise AssertionError("raw headers are scanned, not looked up")


@pytest.mark.parametrize("shape", ["httpx", "raw", "mapping"])
def test_every_header_shape_calibrates_alike(
    shape: str, http: Any, observed: list[tuple[str, float, float | None]]
) -> None:
    headers: Any = {
        "httpx": lambda: http.Headers({key.upper(): value for key, value in HEADERS.items()}),
        "raw": lambda: _RawOnly(HEADERS),
        "mapping": lambda: HEADERS,
    }[shape]()
    requests, tokens = Rate(500, per=60), Rate(20_000, per=60)
    ao.observe_rate_limits(headers, requests=requests, tokens=tokens, now=0.0)
    assert observed == [("500/60s", 7, 110.0), ("20000/60s", 150, 55.5)]
    observed.clear()
    empty = {"httpx": lambda: http.Headers(), "raw": lambda: _RawOnly({}), "mapping": dict}
    ao.observe_rate_limits(empty[shape](), requests=requests, tokens=tokens, now=0.0)
    assert observed == []


@pytest.mark.parametrize("shape", ["httpx", "raw"])
def test_a_repeated_header_counts_with_its_last_value(
    shape: str, http: Any, observed: list[tuple[str, float, float | None]]
) -> None:
    entries = [
        ("x-ratelimit-remaining-requests", "900"),
        ("x-ratelimit-reset-requests", "1s"),
        ("X-RateLimit-Remaining-Requests", "7"),
        ("x-ratelimit-reset-requests", "1m50s"),
    ]
    headers: Any = http.Headers(entries)
    if shape == "raw":
        headers = SimpleNamespace(raw=[(k.encode(), v.encode()) for k, v in entries])
    ao.observe_rate_limits(headers, requests=Rate(500, per=60), tokens=None, now=0.0)
    assert observed == [("500/60s", 7, 110.0)]


@pytest.mark.anyio
@pytest.mark.filterwarnings(SSE_GENERATOR_WARNING)
async def test_headers_reach_the_rates_through_the_sdk(
    observed: list[tuple[str, float, float | None]],
) -> None:
    http = sdk_http()
    reply = {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
    }

    async def handler(request: Any) -> Any:
        return http.Response(200, json=reply, headers=HEADERS)

    async with openai.AsyncOpenAI(
        base_url="http://sim.invalid/v1",
        api_key="sk-test",
        http_client=http.AsyncClient(transport=http.MockTransport(handler)),
    ) as client:
        fan = ao.fan(client, rpm=500, tpm=20_000)

        async def ask(request: dict[str, Any]) -> Any:
            return await client.chat.completions.create(**request)

        (result,) = await fan.map(ask, [REQUEST])
    assert result.choices[0].message.content == "hi"
    assert observed == [("500/60s", 7, 110.0), ("20000/60s", 150, 55.5)]


# -- the blocking twin ------------------------------------------------------------------------


def test_blocking_fan_for_the_sync_client() -> None:
    client = _sync_client()
    with ao.blocking_fan(client, rpm=600, tpm=100_000, concurrency=4) as fan:
        assert isinstance(fan, anyfan.blocking.Fan)
        assert fan.concurrency == 4
        assert client.max_retries == 2
        assert fan.client.max_retries == 0
        assert isinstance(fan, ao.OpenAIBlockingFan)
        assert client._client.event_hooks["response"] == []
        assert fan.map(len, [{"prompt": "ab"}, {"prompt": "abc"}]) == [1, 1]
    client.close()


def test_items_must_be_request_dicts() -> None:
    with pytest.raises(TypeError, match=r"keyword arguments as a dict.*got str"):
        ao.estimate_tokens("Tell me a joke")  # type: ignore[arg-type]
    # The estimate fails that item only (issue 10/5 item 6), with its index.
    with ao.blocking_fan(tpm=1000) as fan, pytest.raises(anyfan.FanError) as caught:
        fan.map(len, ["a prompt"])
    assert caught.value.indices == (0,)
    assert isinstance(caught.value.exceptions[0], TypeError)
    assert "got str" in str(caught.value.exceptions[0])


def test_blocking_fan_checks_its_options() -> None:
    with pytest.raises(ValueError, match="rpm must be a positive, finite number"):
        ao.blocking_fan(rpm=-1)
    with pytest.raises(TypeError, match="retry must be"):
        ao.blocking_fan(retry="never")  # type: ignore[arg-type]


# -- when requests leave: the slice guard's measure -----------------------------------------


def test_the_send_watcher_is_installed_once_per_client_with_limits() -> None:
    client = _async_client()
    ao.fan(client, rpm=10)
    ao.fan(client, tpm=1000, calibrate=False)
    hooks = client._client.event_hooks["request"]
    assert [type(hook).__name__ for hook in hooks] == ["_SendWatcher"]
    assert hooks[0]._traced  # the SDK's default transport runs on httpcore
    bare = _async_client()
    ao.fan(bare)
    assert bare._client.event_hooks["request"] == []
    assert not ao.watch_sends(_sync_client())


@pytest.mark.anyio
@pytest.mark.filterwarnings(SSE_GENERATOR_WARNING)
async def test_each_admitted_request_reports_its_delay_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    http = sdk_http()
    reply = {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
    }
    reported: list[float] = []

    async def handler(request: Any) -> Any:
        return http.Response(200, json=reply)

    async with openai.AsyncOpenAI(
        base_url="http://sim.invalid/v1",
        api_key="sk-test",
        http_client=http.AsyncClient(transport=http.MockTransport(handler)),
    ) as client:
        fan = ao.fan(client, rpm=6000)
        (rate,) = fan.limits
        watcher = client._client.event_hooks["request"][0]
        assert not watcher._traced  # a mock transport: the hook's own moment counts
        original = Limits.report_delay

        def spy(self: Limits, seconds: float, now: float) -> None:
            reported.append(seconds)
            original(self, seconds, now)

        monkeypatch.setattr(Limits, "report_delay", spy)

        async def ask(request: dict[str, Any]) -> Any:
            return await fan.client.chat.completions.create(**request)

        await fan.map(ask, [REQUEST] * 3)
        await client.chat.completions.create(**REQUEST)  # outside the Fan: nothing to report
    assert len(reported) == 3
    assert all(0 <= delay < 5 for delay in reported)
    assert rate.guard == pytest.approx(0.05)  # cautious until enough delays are known


@pytest.mark.anyio
async def test_the_trace_reports_when_the_headers_go_out() -> None:
    from anyfan._core import note_sent
    from anyfan._core._rate import Limits
    from anyfan._core._sent import ADMITTED
    from anyfan.openai._fan import _SendWatcher, _trace

    rate = Rate(600, per=60)
    calls = Limits([rate])
    calls.bind()
    ticket = await calls.acquire("item")
    assert ADMITTED.get() is ticket
    request = SimpleNamespace(extensions={})
    await _SendWatcher(traced=True)(request)
    assert request.extensions["trace"] is _trace
    await _trace("connection.connect_tcp.started", {})
    assert ADMITTED.get() is ticket  # not yet sent
    await _trace("http11.send_request_headers.started", {})
    assert ADMITTED.get() is None
    assert rate.guard == pytest.approx(0.05)
    assert note_sent() is None  # reported once
    # Nothing pending (outside a limited Fan, or a redirect): the request is left alone.
    untouched = SimpleNamespace(extensions={})
    await _SendWatcher(traced=True)(untouched)
    assert untouched.extensions == {}
    # A request whose trace the caller set already is reported by the hook itself.
    await calls.acquire("item")
    await _SendWatcher(traced=True)(SimpleNamespace(extensions={"trace": print}))
    assert ADMITTED.get() is None


@pytest.mark.anyio
async def test_the_trace_leaves_the_request_once_its_headers_are_out() -> None:
    from anyfan.openai._fan import _trace

    ours = SimpleNamespace(extensions={"trace": _trace, "timeout": 1})
    await _trace("http11.send_request_headers.started", {"request": ours})
    assert ours.extensions == {"timeout": 1}  # httpcore calls nothing more for it
    theirs = SimpleNamespace(extensions={"trace": print})
    await _trace("http2.send_request_headers.started", {"request": theirs})
    assert theirs.extensions == {"trace": print}  # a caller's own trace stays
    await _trace("http11.send_request_headers.started", {})  # no request: nothing to drop


async def _traced_sends(
    monkeypatch: pytest.MonkeyPatch, requests: int, **limits: Any
) -> tuple[list[str], Any]:
    """Send ``requests`` through a limited fan, one at a time, to the simulator.

    Returns the names of the httpcore trace events the adapter's trace saw,
    and the fan.
    """
    from anyfan.openai import _fan as adapter
    from anyfan.sim import Simulator

    seen: list[str] = []
    original = adapter._trace

    async def spy(name: str, info: Any) -> None:
        seen.append(name)
        await original(name, info)

    monkeypatch.setattr(adapter, "_trace", spy)
    with Simulator(seed=1) as sim:
        async with openai.AsyncOpenAI(base_url=sim.base_url, api_key="sk-test") as client:
            fan = ao.fan(client, **limits)

            async def ask(request: dict[str, Any]) -> Any:
                return await fan.client.chat.completions.create(**request)

            replies = await fan.map(ask, [REQUEST] * requests, concurrency=1)
    assert len(replies) == requests
    return seen, fan


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", [pytest.param(("asyncio", {}), id="asyncio")])
async def test_httpcore_traces_a_limited_request_only_until_it_is_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen, fan = await _traced_sends(monkeypatch, 3, rpm=6000)
    (rate,) = fan.limits
    sent = [name for name in seen if name.endswith("send_request_headers.started")]
    assert len(sent) == 3
    # Nothing past the headers' write: no body, response or close events.
    assert {name.split(".")[1] for name in seen} <= {"connect_tcp", "send_request_headers"}
    assert rate.guard == pytest.approx(0.05)  # the delays were reported


@pytest.fixture
def platform_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    """No client in this process has found its platform yet, as far as the adapter knows."""
    from anyfan.openai import _fan as adapter

    monkeypatch.setattr(adapter, "_found", [])
    monkeypatch.setattr(adapter, "_learning", weakref.WeakSet())


@pytest.mark.usefixtures("platform_unknown")
def test_a_copy_shares_the_platform_its_original_found() -> None:
    known = _async_client()
    known._platform = "Linux"
    assert ao.fan(known, rpm=10).client._platform == "Linux"
    assert ao.fan(_async_client(), rpm=10).client._platform == "Linux"  # the process's


@pytest.mark.usefixtures("platform_unknown")
def test_a_copy_that_learns_the_platform_tells_later_copies() -> None:
    fresh = _async_client()
    first = ao.fan(fresh, rpm=10)
    assert first.client._platform is None
    first.client._platform = "Linux"  # as the SDK sets it on its first request
    assert ao.fan(fresh, rpm=10).client._platform == "Linux"  # from the live copy
    assert fresh._platform is None  # the caller's client is left alone


@pytest.mark.usefixtures("platform_unknown")
def test_a_fan_that_goes_leaves_its_copys_platform_behind() -> None:
    first = ao.fan(_async_client(), rpm=10)
    copy = weakref.ref(first.client)
    first.client._platform = "Linux"
    del first
    gc.collect()
    assert copy() is None  # the copy lives no longer than its Fan
    assert ao.fan(_async_client(), rpm=10).client._platform == "Linux"


@pytest.mark.usefixtures("platform_unknown")
def test_copies_that_never_learn_the_platform_leave_nothing_behind() -> None:
    from anyfan.openai import _fan as adapter

    first = ao.fan(_async_client(), rpm=10)
    del first
    gc.collect()
    assert adapter._found == []
    assert ao.fan(_async_client(), rpm=10).client._platform is None


@pytest.mark.usefixtures("platform_unknown")
def test_a_copy_that_is_not_an_sdk_client_or_knows_its_platform_is_left_alone() -> None:
    from anyfan.openai import _fan as adapter

    not_a_client = SimpleNamespace()
    adapter._share_platform(SimpleNamespace(_platform="Linux"), not_a_client, object())
    assert not hasattr(not_a_client, "_platform")
    knows = SimpleNamespace(_platform="Darwin")
    adapter._share_platform(SimpleNamespace(_platform="Linux"), knows, object())
    assert knows._platform == "Darwin"
    assert adapter._found == []  # nothing learned from a copy it did not touch


def test_report_delay_ignores_nonsense() -> None:
    rate = Rate(600, per=60)
    rate.report_delay(-1.0, now=0.0)
    rate.report_delay(math.nan, now=0.0)
    assert rate.guard == pytest.approx(0.005)
    rate.report_delay(0.001, now=0.0)
    assert rate.guard == pytest.approx(0.05)


def test_limits_report_delay_reaches_every_rate_and_ignores_nonsense() -> None:
    requests, tokens = Rate(600, per=60), Rate(60_000, per=60)
    limits = Limits([requests, tokens])
    limits.report_delay(-1.0, 0.0)
    limits.report_delay(math.nan, 0.0)
    assert requests.guard == tokens.guard == pytest.approx(0.005)
    limits.report_delay(0.001, 0.0)
    assert requests.guard == tokens.guard == pytest.approx(0.05)  # cautious at first, both
