"""The retry budget and its sliding window, on a fake clock."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anyfan._core._budget import RetryBudget
from anyfan._core._window import SlidingSum

# -- the sliding window ------------------------------------------------------------


def test_sliding_sum_counts_only_the_window() -> None:
    window = SlidingSum(10.0, buckets=10)
    window.add(3, 0.5)
    window.add(4, 5.0)
    assert window.total(5.0) == 7
    assert window.total(10.9) == 4  # the first bucket (0..1 s) has left
    assert window.total(15.9) == 0


def test_sliding_sum_reuses_slots() -> None:
    window = SlidingSum(2.0, buckets=2)
    window.add(1, 0.0)
    window.add(1, 2.0)  # same slot as 0.0, two windows later
    assert window.total(2.0) == 1


def test_sliding_sum_drops_history_when_the_clock_jumps_back() -> None:
    window = SlidingSum(10.0)
    window.add(5, 1_000.0)
    assert window.total(3.0) == 0


@given(
    events=st.lists(st.tuples(st.floats(0, 100), st.integers(1, 5)), max_size=50),
    now=st.floats(0, 120),
)
def test_sliding_sum_is_between_the_exact_sums_of_its_bounds(
    events: list[tuple[float, int]], now: float
) -> None:
    """It counts everything within window - one bucket, and nothing older than the window."""
    window = SlidingSum(10.0, buckets=10)
    past = sorted((t, a) for t, a in events if t <= now)
    for t, amount in past:
        window.add(amount, t)
    inner = sum(a for t, a in past if t > now - 9.0)
    outer = sum(a for t, a in past if t > now - 10.0 - 1e-9)
    assert inner <= window.total(now) <= outer


# -- the budget -----------------------------------------------------------------------


def test_a_handful_of_early_retries_is_allowed() -> None:
    budget = RetryBudget(0.2, window=10.0, minimum=3)
    assert [budget.spend(0.0) for _ in range(4)] == [True, True, True, False]
    for _ in range(5):
        budget.record_call(0.0)
    assert budget.spend(0.0)  # 0.2 * 5 calls + 3: a fourth retry fits now
    assert not budget.spend(0.0)


def test_retries_scale_with_calls() -> None:
    budget = RetryBudget(0.2, window=10.0, minimum=0)
    for _ in range(50):
        budget.record_call(0.0)
    assert sum(budget.spend(0.0) for _ in range(20)) == 10
    assert not budget.allows(0.0)
    assert not budget.spend(20.0)  # the calls have left the window too


def test_the_budget_recovers_as_the_window_slides() -> None:
    budget = RetryBudget(0.5, window=10.0, minimum=1)
    assert budget.spend(0.0)
    assert not budget.spend(0.0)
    assert budget.spend(11.0)


def test_an_outage_is_not_multiplied_by_retries() -> None:
    """Every call fails and wants 3 retries; retries stay near 20% of calls."""
    budget = RetryBudget(0.2, window=10.0, minimum=5)
    calls = retries = 0
    for step in range(1_000):
        now = step * 0.05  # 20 calls a second for 50 s
        budget.record_call(now)
        calls += 1
        for _ in range(3):
            if budget.spend(now):
                retries += 1
    assert retries <= 0.2 * calls + 5 * (50 / 10 + 1)
    assert retries >= 0.15 * calls  # the budget is used, not wasted


def test_repr_and_window() -> None:
    budget = RetryBudget(0.25, window=30.0, minimum=2)
    assert budget.window == 30.0
    assert repr(budget) == "RetryBudget(0.25, window=30.0, minimum=2)"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"ratio": -0.1}, ValueError, "ratio"),
        ({"ratio": math.inf}, ValueError, "ratio"),
        ({"ratio": "0.2"}, TypeError, "ratio"),
        ({"window": 0}, ValueError, "window must be a positive"),
        ({"minimum": -1}, ValueError, "minimum"),
        ({"minimum": 1.5}, TypeError, "minimum"),
        ({"minimum": True}, TypeError, "minimum"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        RetryBudget(**kwargs)


def test_sliding_sum_keeps_a_bucket_it_returns_to() -> None:
    from anyfan._core._window import SlidingSum

    window = SlidingSum(1.0, buckets=10)
    window.add(1.0, 0.01)
    window.add(2.0, 0.15)  # the next bucket
    window.add(4.0, 0.05)  # back in the first (a clock that stepped back): kept, not reset
    assert window.total(0.15) == 7.0
