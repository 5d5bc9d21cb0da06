"""The counters behind ``Fan.stats`` and the snapshot they freeze into."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anyfan._core._stats import RATE_WINDOW, AdmissionMeter, FanStats, LimitStats, Stats


def test_a_fresh_snapshot_is_all_zero() -> None:
    assert Stats().snapshot() == FanStats()


def test_the_snapshot_copies_the_counts() -> None:
    stats = Stats()
    stats.started = 5
    stats.succeeded = stats.failed = stats.retried = stats.cancelled = 1
    limit = LimitStats("50/1s", 50.0, 25.0)
    snap = stats.snapshot(paused=1.5, limits=[limit])
    assert snap == FanStats(
        started=5,
        succeeded=1,
        failed=1,
        retried=1,
        cancelled=1,
        in_flight=1,
        paused=1.5,
        limits=(limit,),
    )


@given(
    events=st.lists(st.sampled_from(("succeeded", "failed", "retried", "cancelled")), max_size=60)
)
def test_in_flight_is_what_started_and_has_not_ended(events: list[str]) -> None:
    stats = Stats()
    for event in events:
        stats.started += 1
        setattr(stats, event, getattr(stats, event) + 1)
    stats.started += 1  # one still running
    snap = stats.snapshot()
    assert snap.in_flight == 1
    assert snap.started == (
        snap.in_flight + snap.succeeded + snap.failed + snap.retried + snap.cancelled
    )


def test_the_snapshot_is_frozen() -> None:
    snap = Stats().snapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.started = 3  # type: ignore[misc]


def test_utilisation() -> None:
    assert LimitStats("100/60s", 100 / 60, 50 / 60).utilisation == pytest.approx(0.5)


def test_admission_meter_reports_units_per_second_per_limit() -> None:
    meter = AdmissionMeter(2)
    for i in range(100):
        meter.record([1.0, 30.0], i * 0.1)  # 10 calls/s of 30 tokens for 10 s
    requests, tokens = meter.rates(9.95)
    assert requests == pytest.approx(10, rel=0.06)
    assert tokens == pytest.approx(300, rel=0.06)
    assert meter.rates(9.95 + 2 * RATE_WINDOW) == (0.0, 0.0)


def test_in_flight_follows_counters_bumped_directly() -> None:
    stats = Stats()
    stats.started += 3
    stats.succeeded += 1
    assert stats.in_flight == 2
    assert stats.snapshot().in_flight == 2


def test_admission_meter_reuses_a_slot_only_for_its_own_time() -> None:
    meter = AdmissionMeter(2, window=2.0, buckets=2)  # slots of 1 s
    meter.record([1.0, 10.0], 0.5)
    meter.record([1.0, 10.0], 0.6)  # the same slot as the last admission
    meter.record([1.0, 10.0], 1.5)
    assert meter.rates(1.5) == (1.5, 15.0)  # 3 calls and 30 units over 2 s
    meter.record([2.0, 20.0], 2.5)  # slot 0 again, for a later second: its old sum goes
    assert meter.rates(2.5) == (1.5, 15.0)
    meter.record([-2.0, -20.0], 2.6)  # an admission undone
    assert meter.rates(2.6) == (0.5, 5.0)


def test_admission_meter_drops_what_a_clock_jump_would_misread() -> None:
    meter = AdmissionMeter(1, window=2.0, buckets=2)
    meter.record([4.0], 10.5)
    assert meter.rates(10.5) == (2.0,)
    assert meter.rates(5.0) == (0.0,)  # read before it happened: not counted
    meter.record([1.0], 4.5)  # the clock went back: the slot starts afresh
    assert meter.rates(4.5) == (0.5,)


def test_admission_meter_with_no_limits_reports_nothing() -> None:
    meter = AdmissionMeter(0)
    meter.record([], 1.0)
    assert meter.rates(1.0) == ()
