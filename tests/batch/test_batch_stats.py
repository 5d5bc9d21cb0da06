from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anyfan.batch import BatchSummary, Counters, LatencyHistogram
from anyfan.batch._stats import format_duration, format_seconds
from strategies import batch_latencies


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1]


@given(
    st.lists(batch_latencies, min_size=1, max_size=300), st.sampled_from([0, 0.5, 0.95, 0.99, 1])
)
def test_quantiles_are_within_the_relative_error(values: list[float], q: float) -> None:
    hist = LatencyHistogram(relative_error=0.01)
    for v in values:
        hist.add(v)
    got = hist.quantile(q)
    want = exact_quantile(values, q)
    assert got is not None
    if want <= 1e-6:
        assert got <= 1e-6 or got == pytest.approx(want, rel=0.0101)
    else:
        assert got == pytest.approx(want, rel=0.0101)
    assert hist.count == len(values)
    assert hist.total == pytest.approx(sum(values))
    assert hist.min == min(values)
    assert hist.max == max(values)


def test_memory_is_bounded_by_the_range_not_the_count() -> None:
    hist = LatencyHistogram()
    for i in range(200_000):
        hist.add(0.001 + (i % 10_000) * 0.01)  # 1 ms to 100 s
    assert hist.count == 200_000
    assert hist.buckets < 600  # ln(1e5) / ln(1.0202) ~ 576


def test_empty_zero_and_negative() -> None:
    hist = LatencyHistogram()
    assert hist.quantile(0.5) is None
    hist.add(-1.0)
    hist.add(0.0)
    assert hist.quantile(0.5) == 0.0
    assert hist.min == 0.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="relative_error"):
        LatencyHistogram(relative_error=0)
    with pytest.raises(ValueError, match="q must be in"):
        LatencyHistogram().quantile(1.5)


def summary(**counts: int) -> BatchSummary:
    c = Counters(**counts)  # type: ignore[arg-type]
    return c.summary()


def test_counters_totals_and_rates() -> None:
    c = Counters(already_ok=5, already_failed=2, ok=10, failed=1, malformed=2, duplicate=1, blank=3)
    assert c.already_done == 7
    assert c.errors == 4
    assert c.done == 7 + 10 + 4 + 3
    assert c.done_this_run == 17
    c.first_at, c.last_at = 100.0, 130.0
    c.tokens = 3000
    for v in (0.1, 0.2, 0.3):
        c.latency.add(v)
    s = c.summary()
    assert s.elapsed == 30.0
    assert s.requests_per_minute == pytest.approx(22.0)  # 11 sent in 30 s
    assert s.tokens_per_minute == pytest.approx(6000.0)
    assert s.p50 == pytest.approx(0.2, rel=0.01)
    assert s.p99 == pytest.approx(0.3, rel=0.01)
    assert s.total_ok == 15
    assert s.total_failed == 1 + 2 + 1 + 2
    assert s.exit_code == 1


def test_no_time_no_rates() -> None:
    s = summary(ok=3)
    assert s.elapsed == 0.0
    assert s.requests_per_minute is None
    assert s.tokens_per_minute is None
    assert s.p50 is None
    assert s.exit_code == 0


def test_format_full() -> None:
    c = Counters(already_ok=4000, already_failed=1, ok=5990, failed=5, malformed=3, duplicate=2)
    c.first_at, c.last_at = 0.0, 61.0
    c.tokens, c.retries, c.rate_limited = 1_000_000, 12, 0
    c.latency.add(0.812)
    c.latency.add(2.1)
    text = c.summary().format(rpm_limit=6000, tpm_limit=2_000_000)
    assert text.splitlines() == [
        "10,001 results in 1:01",
        "  ok             9,990  (4,000 before this run)",
        "  failed            11  (5 sent, 3 malformed lines, 2 duplicate custom_id, "
        "1 before this run)",
        "  latency p50 812 ms, p95 2.10 s, p99 2.10 s over 5,995 requests",
        "  5,897 RPM (limit 6,000: 98.3%), 983,607 TPM (limit 2,000,000: 49.2%), "
        "12 retries, 0 x 429",
    ]


def test_format_minimal() -> None:
    text = summary(ok=2).format()
    assert text.splitlines() == [
        "2 results in 0:00",
        "  ok                 2",
        "  failed             0",
        "  0 retries, 0 x 429",
    ]


def test_format_without_limits_or_tokens() -> None:
    c = Counters(ok=60)
    c.first_at, c.last_at = 0.0, 60.0
    assert c.summary().format().splitlines()[-1] == "  60 RPM, 0 retries, 0 x 429"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0004, "0.40 ms"), (0.8123, "812 ms"), (2.104, "2.10 s"), (75.0, "75.00 s")],
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "?"), (math.inf, "?"), (0, "0:00"), (61.4, "1:01"), (3725, "1:02:05"), (-3, "0:00")],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text
