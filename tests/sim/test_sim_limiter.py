"""The 1-second-slice rate limiter, on a clock the tests set."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anyfan.sim import ServerLimits
from anyfan.sim._limiter import KeyQuota, RateLimiter


def test_no_limits_admit_everything_without_headers() -> None:
    limiter = RateLimiter(ServerLimits())
    decision = limiter.admit("k", 10**9, 0.0)
    assert decision.admitted
    assert decision.headers == []


def test_each_slice_admits_a_sixtieth_of_the_minute() -> None:
    limiter = RateLimiter(ServerLimits(rpm=600))  # 10 per 1-second slice
    admitted = [limiter.admit("k", 1, 0.5 + i * 0.01).admitted for i in range(11)]
    assert admitted == [True] * 10 + [False]
    refused = limiter.admit("k", 1, 0.75)
    assert refused.kind == "requests"
    assert refused.wait == pytest.approx(0.25)  # until the next slice starts
    assert limiter.admit("k", 1, 1.0).admitted


def test_keys_have_their_own_budgets() -> None:
    limiter = RateLimiter(ServerLimits(rpm=60))
    assert limiter.admit("a", 1, 0.0).admitted
    assert not limiter.admit("a", 1, 0.1).admitted
    assert limiter.admit("b", 1, 0.1).admitted


def test_the_minute_bucket_caps_bursts_across_slices() -> None:
    limiter = RateLimiter(ServerLimits(rpm=1))
    assert limiter.admit("k", 1, 0.0).admitted
    refused = limiter.admit("k", 1, 5.0)
    assert not refused.admitted
    assert refused.wait == pytest.approx(55.0)
    assert refused.used == 1
    assert refused.limit == 1
    assert limiter.admit("k", 1, 60.0).admitted


def test_tokens_are_charged_up_front_and_named_in_refusals() -> None:
    limiter = RateLimiter(ServerLimits(rpm=6000, tpm=6000))  # 100 tokens per slice
    assert limiter.admit("k", 60, 0.0).admitted
    refused = limiter.admit("k", 60, 0.5)
    assert refused.kind == "tokens"
    assert refused.cost == 60
    assert refused.used == 10  # 60 charged, 50 refilled over half a second
    headers = dict(refused.headers)
    assert headers[b"x-ratelimit-remaining-tokens"] == b"5990"
    assert headers[b"x-ratelimit-remaining-requests"] == b"6000"


def test_a_request_larger_than_a_slice_needs_an_empty_slice() -> None:
    limiter = RateLimiter(ServerLimits(tpm=600))  # 10 tokens per slice
    assert limiter.admit("k", 50, 0.0).admitted  # alone in its slice
    refused = limiter.admit("k", 1, 0.2)
    assert not refused.admitted
    assert refused.wait == pytest.approx(0.8)
    assert limiter.admit("k", 50, 1.0).admitted  # the next slice is empty again


def test_a_request_larger_than_the_limit_never_passes() -> None:
    limiter = RateLimiter(ServerLimits(tpm=100))
    refused = limiter.admit("k", 101, 0.0)
    assert not refused.admitted
    assert refused.wait == math.inf
    assert refused.kind == "tokens"


def test_the_longer_wait_names_the_limit() -> None:
    limiter = RateLimiter(ServerLimits(rpm=60, tpm=60))
    assert limiter.admit("k", 50, 0.0).admitted
    refused = limiter.admit("k", 30, 0.5)
    # Requests wait half a second for the next slice; tokens lack 19.5 at 1 per second.
    assert refused.kind == "tokens"
    assert refused.wait == pytest.approx(19.5)
    assert limiter.admit("k", 1, 0.6).kind == "requests"


def test_headers_report_the_minute_bucket_in_go_durations() -> None:
    window = KeyQuota("requests", 6000, 0.0)
    assert dict(window.headers()) == {
        b"x-ratelimit-limit-requests": b"6000",
        b"x-ratelimit-remaining-requests": b"6000",
        b"x-ratelimit-reset-requests": b"0s",
    }
    assert window.wait(1, 0.0) == 0.0
    window.charge(1)
    assert dict(window.headers())[b"x-ratelimit-reset-requests"] == b"10ms"
    window.charge(1999)
    headers = dict(window.headers())
    assert headers[b"x-ratelimit-remaining-requests"] == b"4000"
    assert headers[b"x-ratelimit-reset-requests"] == b"20s"
    window.charge(4000)
    assert dict(window.headers())[b"x-ratelimit-reset-requests"] == b"1m0s"


@given(
    st.integers(1, 10_000),
    st.lists(st.tuples(st.floats(0, 0.5), st.integers(1, 50)), min_size=1, max_size=300),
)
def test_slices_and_the_minute_bucket_bound_what_passes(
    limit: int, arrivals: list[tuple[float, int]]
) -> None:
    limiter = RateLimiter(ServerLimits(tpm=limit))
    cap = math.ceil(limit / 60)
    now = 0.0
    by_slice: dict[int, list[int]] = {}
    admitted: list[tuple[float, int]] = []
    for gap, cost in arrivals:
        now += gap
        decision = limiter.admit("k", cost, now)
        if decision.admitted:
            by_slice.setdefault(int(now), []).append(cost)
            admitted.append((now, cost))
        else:
            assert decision.wait > 0
    for costs in by_slice.values():
        assert sum(costs) <= cap or len(costs) == 1
    # The minute bucket: whatever the window, a full bucket plus its refill.
    for i, (start, _) in enumerate(admitted):
        for end, _ in admitted[i:]:
            window = sum(c for t, c in admitted if start <= t <= end)
            assert window <= limit + limit / 60 * (end - start) + 1e-6


@given(st.integers(1, 100_000), st.floats(0.5, 0.99))
def test_a_client_pacing_below_the_limit_is_never_refused(limit: int, fraction: float) -> None:
    limiter = RateLimiter(ServerLimits(rpm=limit))
    interval = 60.0 / (limit * fraction)
    steps = min(500, limit * 2)
    assert all(limiter.admit("k", 1, 1e-6 + i * interval).admitted for i in range(steps))
