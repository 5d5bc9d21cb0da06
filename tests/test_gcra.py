"""The rate-limit arithmetic, on a fake clock: window bounds, throughput, order, refunds."""

from __future__ import annotations

import heapq
import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anyfan._core._gcra import (
    DELAYS_KEPT,
    GUARD,
    MAX_GUARD,
    MIN_DEFAULT_BURST,
    SLICE,
    TOLERANCE,
    Charge,
    Gcra,
    default_burst,
)
from anyfan._core._window import HighQuantile
from strategies import Demand, bound_windows, bursts, demands, rate_specs

# -- a model of the limiter's head of line, on a fake clock -------------------


def simulate(gcra: Gcra, calls: list[Demand]) -> list[Charge]:
    """Admit ``calls`` in order as the limiter's head would, settling each later.

    The head computes its earliest start, is woken by any refund before then
    (and looks again), wakes ``late`` after it, and is admitted. Settles
    happen at their own times, in time order with the admissions.
    """
    now = 0.0
    seq = itertools.count()
    due: list[tuple[float, int, Charge, float]] = []
    charges = []

    def settle_until(t: float) -> None:
        while due and due[0][0] <= t:
            at, _, charge, used = heapq.heappop(due)
            gcra.settle(charge, used, at)

    for call in calls:
        now += call.gap
        settle_until(now)
        while True:
            start = gcra.earliest(call.cost, now)
            if due and due[0][0] < start:
                now = max(now, due[0][0])
                settle_until(now)
                continue
            break
        now = max(now, start) + call.late
        settle_until(now)
        assert gcra.earliest(call.cost, now) <= now
        charge = gcra.reserve(call.cost, now)
        assert charge.start == now
        charges.append(charge)
        heapq.heappush(due, (now + call.after, next(seq), charge, call.cost * call.used))
    settle_until(math.inf)
    return charges


def window_sums(charges: list[Charge], width: float) -> list[tuple[float, float, float]]:
    """For each admission time s: (s, cost admitted in [s, s + width), largest such cost)."""
    out = []
    for i, first in enumerate(charges):
        total = 0.0
        largest = 0.0
        for later in charges[i:]:
            if not later.start < first.start + width:
                break
            total += later.cost
            largest = max(largest, later.cost)
        out.append((first.start, total, largest))
    return out


# -- defaults -----------------------------------------------------------------


def test_default_burst_absorbs_lateness_but_stays_within_a_slice() -> None:
    assert default_burst(20) == MIN_DEFAULT_BURST
    assert default_burst(50) == pytest.approx(2.5)
    assert default_burst(1_000) == pytest.approx(1_000 * TOLERANCE)
    assert default_burst(0.5) == 0.5 * SLICE  # never more than a slice's worth
    assert Gcra(90, 60).slice_cap == 2  # 1.5/s: whole units, rounded up
    assert Gcra(20, 1).burst == MIN_DEFAULT_BURST
    assert Gcra(6_000, 60).slice_cap == 100  # 6,000 RPM is 100 per second


def test_accessors() -> None:
    gcra = Gcra(120, 60, burst=3)
    assert (gcra.limit, gcra.per, gcra.rate, gcra.burst) == (120, 60, 2, 3)
    assert gcra.slice_cap == 3  # an explicit burst above a second's worth widens the slice
    assert repr(gcra) == "Gcra(limit=120.0, per=60.0, burst=3.0)"
    assert repr(gcra.reserve(1, 0.0)) == "Charge(cost=1, start=0.0)"


def test_unit_calls_are_spaced_evenly_after_the_burst() -> None:
    gcra = Gcra(20, 1)  # burst 2
    starts = [gcra.reserve(1, 0.0).start for _ in range(6)]
    assert starts[:2] == [0.0, 0.0]
    gaps = [b - a for a, b in itertools.pairwise(starts[1:])]
    assert gaps == pytest.approx([gcra.interval] * 4)


def test_the_pace_is_the_rate_or_the_guarded_slice_if_slower() -> None:
    assert Gcra(20, 1).interval == pytest.approx((SLICE + GUARD) / 20)  # 99.5% of 20/s
    assert Gcra(90, 60).interval == pytest.approx(60 / 90)  # 2 per slice is plenty
    assert Gcra(10, 1, burst=20).interval == pytest.approx(0.1)  # a wide slice


def test_level_counts_undrained_units() -> None:
    gcra = Gcra(10, 1, burst=20)
    assert gcra.level(0.0) == 0
    gcra.reserve(3, 0.0)
    assert gcra.level(0.0) == pytest.approx(3)
    assert gcra.level(0.1) == pytest.approx(2)
    assert gcra.level(5.0) == 0


# -- the window bound -----------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(spec=rate_specs, burst=bursts, calls=demands(), width=bound_windows)
def test_window_bound_holds_for_every_window(
    spec: tuple[float, float], burst: float | None, calls: list[Demand], width: float
) -> None:
    """Over any window W >= 1 s: at most rate * W + max(burst, largest call)."""
    limit, per = spec
    gcra = Gcra(limit, per, burst)
    charges = simulate(gcra, calls)
    for start, total, largest in window_sums(charges, width):
        bound = gcra.rate * width + max(gcra.burst, largest)
        assert total <= bound * (1 + 1e-9) + 1e-9, (start, total, bound)


@settings(max_examples=150, deadline=None)
@given(spec=rate_specs, burst=bursts, calls=demands())
def test_no_one_second_slice_exceeds_its_cap(
    spec: tuple[float, float], burst: float | None, calls: list[Demand]
) -> None:
    """Any 1-s window holds at most the slice cap, or one oversized call alone."""
    limit, per = spec
    gcra = Gcra(limit, per, burst)
    charges = simulate(gcra, calls)
    cap = gcra.slice_cap
    for start, total, largest in window_sums(charges, SLICE):
        if largest > cap:
            assert total == largest, start  # an oversized call goes alone
        else:
            assert total <= cap * (1 + 1e-9), (start, total, cap)


@settings(max_examples=60, deadline=None)
@given(spec=rate_specs, seed=st.integers(0, 2**32 - 1))
def test_sustained_throughput_reaches_the_limit(spec: tuple[float, float], seed: int) -> None:
    """With demand above the limit and timers up to 5 ms late, >= 99% of the limit.

    As in the limiter, lateness strikes only when the head had to sleep; calls
    that may go at the same instant go together.
    """
    limit, per = spec
    gcra = Gcra(limit, per)
    rate = gcra.rate
    duration = max(2.0, min(20.0, 3_000 / rate))
    rng = random.Random(seed)
    now = 0.0
    admitted = 0
    while True:
        start = gcra.earliest(1, now)
        if start > now:  # the head slept, and its timer fires late
            now = start + rng.uniform(0, 0.005)
        if now >= duration:
            break
        gcra.reserve(1, now)
        admitted += 1
    assert admitted >= 0.99 * rate * duration


def test_one_second_windows_hold_exactly_the_limit_at_50_per_second() -> None:
    gcra = Gcra(50, 1)
    now = 0.0
    starts = []
    while now < 10:
        now = gcra.earliest(1, now)
        starts.append(gcra.reserve(1, now).start)
    ones = [Charge(1, s) for s in starts]
    assert max(total for _, total, _ in window_sums(ones, 1.0)) == 50


def test_an_oversized_call_waits_for_an_empty_bucket_and_slice() -> None:
    gcra = Gcra(100, 1)  # burst 5, slice cap 100
    gcra.reserve(60, 0.0)
    big = gcra.reserve(150, 0.0)
    assert big.start == pytest.approx(1.0 + GUARD)  # the 60 must leave the slice first
    after = gcra.reserve(1, big.start)
    # The 150 drains at the pace; the next unit needs only 4 units of room (burst 5).
    assert after.start == pytest.approx(big.start + (150 - 4) * gcra.interval)


# -- order ----------------------------------------------------------------------


@given(costs=st.lists(st.integers(0, 500).map(float), min_size=1, max_size=60))
def test_reservations_start_in_order(costs: list[float]) -> None:
    """A small call reserved after a large one never starts before it."""
    gcra = Gcra(100, 1)
    starts = [gcra.reserve(cost, 0.0).start for cost in costs]
    assert starts == sorted(starts)


def test_a_large_call_is_not_overtaken() -> None:
    gcra = Gcra(10, 1)
    gcra.reserve(2, 0.0)
    big = gcra.reserve(8, 0.0)
    small = gcra.reserve(1, 0.0)
    assert big.start > 0
    assert small.start >= big.start


# -- settling -------------------------------------------------------------------


def test_unused_cost_is_given_back_while_still_queued() -> None:
    gcra = Gcra(10, 1, burst=20)
    charge = gcra.reserve(10, 0.0)
    assert gcra.settle(charge, 2, 0.0) == pytest.approx(8)
    assert charge.cost == pytest.approx(2)
    assert gcra.level(0.0) == pytest.approx(2)


def test_only_the_undrained_part_is_given_back() -> None:
    gcra = Gcra(10, 1, burst=20)
    charge = gcra.reserve(10, 0.0)  # drains over 1 s
    assert gcra.settle(charge, 2, 0.5) == pytest.approx(5)  # 5 units had drained
    assert charge.cost == pytest.approx(5)


def test_nothing_is_given_back_once_drained() -> None:
    gcra = Gcra(10, 1, burst=20)
    charge = gcra.reserve(10, 0.0)
    assert gcra.settle(charge, 0, 2.0) == 0
    assert charge.cost == 10


def test_a_refund_moves_up_the_charges_queued_behind() -> None:
    gcra = Gcra(10, 1, burst=30)
    first = gcra.reserve(10, 0.0)
    second = gcra.reserve(10, 0.0)
    assert gcra.settle(first, 0, 0.0) == pytest.approx(10)
    assert (second.seg_start, second.seg_end) == pytest.approx((0.0, 1.0))
    assert gcra.settle(second, 0, 0.5) == pytest.approx(5)
    assert gcra.level(0.5) == pytest.approx(0)


def test_a_call_that_never_started_gets_everything_back() -> None:
    gcra = Gcra(1, 1, burst=1)
    gcra.reserve(1, 0.0)
    future = gcra.reserve(1, 0.0)
    assert future.start == pytest.approx(1.0 + GUARD)
    assert gcra.settle(future, 0, 0.0) == pytest.approx(1)
    assert gcra.earliest(1, 0.0) == future.start  # the next takes its place


def test_using_more_than_estimated_charges_the_rest_at_once() -> None:
    gcra = Gcra(10, 1, burst=10)
    charge = gcra.reserve(2, 0.0)
    assert gcra.settle(charge, 7, 0.0) == pytest.approx(-5)
    assert charge.cost == 7
    assert gcra.level(0.0) == pytest.approx(7)
    assert gcra.earliest(3, 0.0) == 0.0
    assert gcra.earliest(4, 0.0) == pytest.approx(1.0 + GUARD)  # 7 + 4 is over the slice cap


def test_exact_use_and_free_calls_change_nothing() -> None:
    gcra = Gcra(10, 1)
    charge = gcra.reserve(1, 0.0)
    assert gcra.settle(charge, 1, 0.0) == 0
    free = gcra.reserve(0, 0.0)
    assert gcra.settle(free, 0, 0.0) == 0
    assert gcra.level(0.0) == pytest.approx(1)


def test_settling_twice_is_refused() -> None:
    gcra = Gcra(10, 1)
    charge = gcra.reserve(1, 0.0)
    gcra.settle(charge, 1, 0.0)
    with pytest.raises(ValueError, match="already settled"):
        gcra.settle(charge, 0, 0.0)


def test_only_the_charges_own_undrained_stretch_comes_back() -> None:
    gcra = Gcra(10, 1, burst=20)
    charge = gcra.reserve(10, 0.0)  # its stretch of the queue: 0..1 s
    behind = gcra.reserve(10, 0.0)  # 1..2 s
    # At 0.95 s only 0.05 s of its stretch is left: 0.5 units, though 7 were unused.
    assert gcra.settle(charge, 3, 0.95) == pytest.approx(0.5)
    assert (behind.seg_start, behind.seg_end) == pytest.approx((0.95, 1.95))
    assert gcra.settle(behind, 10, 1.0) == 0


def test_a_refund_after_the_charge_left_the_slice_still_frees_the_bucket() -> None:
    gcra = Gcra(10, 1, burst=100)
    charge = gcra.reserve(50, 0.0)  # drains over 5 s; leaves the slice after 1 s
    gcra.reserve(1, 2.0)
    assert not charge.sliced
    assert gcra.settle(charge, 0, 2.0) == pytest.approx(30)
    assert gcra.level(2.0) == pytest.approx(1)


def test_refunds_free_room_in_the_slice() -> None:
    gcra = Gcra(10, 1, burst=10)  # slice cap 10
    charge = gcra.reserve(10, 0.0)
    assert gcra.earliest(5, 0.0) > 0
    gcra.settle(charge, 5, 0.0)
    assert gcra.earliest(5, 0.0) == 0.0


# -- adjusting --------------------------------------------------------------------


def test_lowering_the_limit_slows_queued_work_at_once() -> None:
    gcra = Gcra(100, 1, burst=10)
    gcra.reserve(10, 0.0)  # full: the next unit is due in one unit's time
    assert gcra.earliest(1, 0.0) == pytest.approx(gcra.interval)
    before = gcra.interval
    gcra.configure(50, 1, 10, 0.0)
    assert gcra.interval == pytest.approx(2 * before)
    assert gcra.earliest(1, 0.0) == pytest.approx(gcra.interval)
    gcra.configure(5, 1, None, 0.0)
    assert gcra.burst == default_burst(5)


def test_raising_the_limit_speeds_queued_work_at_once() -> None:
    gcra = Gcra(1, 1, burst=1)
    first = gcra.reserve(1, 0.0)
    queued = gcra.reserve(1, 0.0)  # a future reservation, about 1 s on
    span = gcra.interval  # one unit's stretch of the queue, about 1 s
    assert (first.seg_end, queued.seg_start, queued.seg_end) == pytest.approx(
        (span, span, 2 * span)
    )
    gcra.configure(10, 1, 10, 0.0)  # ten times the pace
    assert gcra.interval == pytest.approx(span / 10)
    assert gcra.earliest(1, 0.0) == pytest.approx(queued.start)  # still after the queued one
    assert (queued.seg_start, queued.seg_end) == pytest.approx((span / 10, 2 * span / 10))
    assert first.seg_end == pytest.approx(span / 10)


def test_configure_with_the_same_rate_keeps_everything() -> None:
    gcra = Gcra(10, 1, burst=4)
    gcra.reserve(2, 0.0)
    gcra.configure(20, 2, 6, 0.0)
    assert gcra.burst == 6
    assert gcra.level(0.0) == pytest.approx(2)


def test_correct_holds_back_when_the_provider_has_less_left() -> None:
    gcra = Gcra(60, 60, burst=2)  # 1 per second
    gcra.correct(0, None, 0.0)
    assert gcra.earliest(1, 0.0) == pytest.approx(1.0)  # refills at the rate
    fresh = Gcra(60, 60, burst=2)
    fresh.correct(50, 30.0, 0.0)  # 30 s to refill: only 30 are left
    assert fresh.earliest(1, 0.0) == 0.0
    plenty = Gcra(60, 60, burst=2)
    plenty.correct(60, None, 0.0)
    assert plenty.level(0.0) == 0


def test_shift_moves_every_stored_time() -> None:
    gcra = Gcra(10, 1, burst=1)
    charge = gcra.reserve(1, 0.0)
    before = gcra.earliest(1, 0.0)
    gcra.shift(1000.0)
    assert gcra.earliest(1, 1000.0) == pytest.approx(before + 1000.0)
    assert charge.start == 1000.0
    assert gcra.settle(charge, 0, 1000.0) == pytest.approx(1)


# -- the slice guard, adapted to the delays between admission and sending ----------------


def test_the_guard_widens_to_the_longest_recent_delay_within_its_bounds() -> None:
    gcra = Gcra(100, 1)
    assert gcra.guard == GUARD
    gcra.observe_delay(0.001, now=0.0)
    # Cautious until a quarter of the recent delays are known: the first are the slowest.
    assert gcra.guard == MAX_GUARD
    for i in range(DELAYS_KEPT):
        gcra.observe_delay(0.002, now=0.01 * i)
    assert gcra.guard == pytest.approx(GUARD + 0.002)
    gcra.observe_delay(0.02, now=1.0)  # a late one widens it at once
    assert gcra.guard == pytest.approx(GUARD + 0.02)
    gcra.observe_delay(10.0, now=1.0)  # never beyond the bound
    assert gcra.guard == MAX_GUARD
    for i in range(2 * DELAYS_KEPT):
        gcra.observe_delay(0.0, now=2.0 + 0.01 * i)
    assert gcra.guard == GUARD  # the slow ones aged out


def test_a_wider_guard_keeps_calls_in_the_slice_longer_and_slows_the_bucket() -> None:
    gcra = Gcra(10, 1, burst=10)
    for _ in range(DELAYS_KEPT):
        gcra.observe_delay(0.03, now=0.0)
    assert gcra.guard == pytest.approx(GUARD + 0.03)
    assert gcra.interval == pytest.approx((SLICE + gcra.guard) / 10)
    first = gcra.reserve(1, 0.0)
    for _ in range(9):
        gcra.reserve(1, 0.0)
    assert first.start == 0.0
    # The eleventh waits for the first to leave the slice, guard included.
    assert gcra.earliest(1, 0.0) == pytest.approx(SLICE + gcra.guard)


def test_a_guard_change_reschedules_queued_work_from_now() -> None:
    gcra = Gcra(100, 1, burst=1)
    for _ in range(50):
        gcra.reserve(1, 0.0)
    before = gcra.earliest(1, 0.0)
    for _ in range(DELAYS_KEPT):
        gcra.observe_delay(0.045, now=0.0)
    after = gcra.earliest(1, 0.0)
    assert after > before
    assert after == pytest.approx(before * gcra.interval / ((SLICE + GUARD) / 100), rel=1e-6)


def test_high_quantile_of_recent_values() -> None:
    recent = HighQuantile(8, quantile=0.5)
    assert recent.value == 0.0
    assert recent.add(3.0) == 3.0  # raised at once
    assert recent.add(1.0) == 3.0  # lowered only when recomputed (every 2 values here)
    for _ in range(8):
        recent.add(1.0)
    assert recent.value == 1.0
    assert HighQuantile(8, initial=5.0).add(1.0) == 5.0
