"""Backoff arithmetic: exponential growth, the cap, jitter, server-directed delays, deadlines."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anyfan._core._backoff import Backoff, directed_delay, within_deadline
from anyfan._core._retry import Retry
from strategies import delay_hints, unit_draws


def test_ceiling_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=8.0)
    assert [backoff.ceiling(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_huge_retry_numbers_do_not_overflow() -> None:
    assert Backoff(base=1e-300, cap=60.0).ceiling(10**9) == 60.0
    assert Backoff(base=0.5, cap=8.0).ceiling(0) == 0.5


def test_without_jitter_the_wait_is_the_ceiling() -> None:
    backoff = Backoff(base=1.0, cap=30.0, jitter=0.0)
    assert backoff.delay(3, lambda: 0.99) == 4.0


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    backoff = Backoff(base=1.0, cap=30.0, jitter=1.0)
    assert backoff.delay(3, lambda: 0.0) == 4.0
    assert backoff.delay(3, lambda: 0.75) == 1.0


def test_partial_jitter_like_the_openai_sdk() -> None:
    backoff = Backoff(base=0.5, cap=8.0, jitter=0.25)
    assert backoff.delay(2, lambda: 1.0) == pytest.approx(0.75)


@given(
    base=st.floats(0.001, 10),
    extra=st.floats(0, 100),
    jitter=st.floats(0, 1),
    retry=st.integers(1, 200),
    draw=unit_draws,
)
def test_delay_never_exceeds_the_ceiling_nor_goes_negative(
    base: float, extra: float, jitter: float, retry: int, draw: float
) -> None:
    backoff = Backoff(base=base, cap=base + extra, jitter=jitter)
    delay = backoff.delay(retry, lambda: draw)
    ceiling = backoff.ceiling(retry)
    assert 0 <= delay <= ceiling <= backoff.cap
    if jitter == 1:
        assert delay > 0  # full jitter's draw is below 1


@pytest.mark.parametrize(
    ("hint", "expected"),
    [(None, None), (math.nan, None), (-3.0, 0.0), (2.5, 2.5), (500.0, 120.0), (math.inf, 120.0)],
)
def test_directed_delay_is_made_safe(hint: float | None, expected: float | None) -> None:
    assert directed_delay(hint, 120.0) == expected


@given(hint=delay_hints, draw=unit_draws, retry=st.integers(1, 10))
def test_a_server_directed_delay_takes_precedence_capped(
    hint: float | None, draw: float, retry: int
) -> None:
    policy = Retry(
        11,
        backoff=1.0,
        max_backoff=30.0,
        retry_on=ValueError,
        delay_hint=lambda error: hint,
        max_hint=60.0,
        budget=None,
    )
    decision = policy.decide(ValueError(), attempt=retry, elapsed=0.0, now=0.0, rand=lambda: draw)
    if hint is None or math.isnan(hint):
        assert decision.delay == policy.backoff.delay(retry, lambda: draw)
    else:
        assert decision.delay == min(max(hint, 0.0), 60.0)


def test_deadline() -> None:
    assert within_deadline(5.0, 4.9, None)
    assert within_deadline(5.0, 4.9, 10.0)
    assert not within_deadline(5.0, 5.0, 10.0)  # it would start as the deadline passes
    assert not within_deadline(9.0, 2.0, 10.0)
