"""`Collector`: judging a run's results by error policy (pure, no event loop)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anyfan import FanError
from anyfan._core._aggregate import PENDING, Collector
from strategies import error_policies


def test_reserve_counts_up_and_marks_pending() -> None:
    collector = Collector("raise")
    assert [collector.reserve() for _ in range(3)] == [0, 1, 2]
    assert collector.results == [PENDING] * 3
    assert repr(PENDING) == "<pending>"
    assert collector.completed() == {}


def test_completed_holds_only_finished_items() -> None:
    collector = Collector("collect")
    for _ in range(4):
        collector.reserve()
    error = KeyError("x")
    collector.succeed(2, "two")
    collector.fail(0, error)
    assert collector.completed() == {0: error, 2: "two"}


@pytest.mark.parametrize(
    ("policy", "stops"), [("raise", True), ("collect", False), ("return", False)]
)
def test_fail_says_whether_to_stop(policy: str, stops: bool) -> None:
    collector = Collector(policy)  # type: ignore[arg-type]
    collector.reserve()
    assert collector.fail(0, ValueError()) is stops


@pytest.mark.parametrize("policy", ["raise", "collect", "return"])
def test_no_failures_returns_the_values(policy: str) -> None:
    collector = Collector(policy)  # type: ignore[arg-type]
    for _ in range(3):
        collector.reserve()
    for index in (2, 0, 1):
        collector.succeed(index, index * 10)
    assert collector.outcome() == [0, 10, 20]


def test_return_policy_puts_exceptions_in_place() -> None:
    collector = Collector("return")
    for _ in range(3):
        collector.reserve()
    error = ValueError("bad")
    collector.succeed(0, "a")
    collector.fail(1, error)
    collector.succeed(2, "c")
    assert collector.outcome() == ["a", error, "c"]
    assert not hasattr(error, "__notes__")  # nothing raised, so nothing annotated


def test_collect_policy_raises_all_failures_in_input_order() -> None:
    collector = Collector("collect")
    for _ in range(5):
        collector.reserve()
    late, early = KeyError("late"), ValueError("early")
    collector.fail(3, late)
    collector.succeed(0, "a")
    collector.fail(1, early)
    collector.succeed(2, "c")
    collector.succeed(4, "e")
    with pytest.raises(FanError) as info:
        collector.outcome()
    error = info.value
    assert str(error) == "2 of 5 calls failed (2 sub-exceptions)"
    assert error.exceptions == (early, late)
    assert error.indices == (1, 3)
    assert error.results == ["a", early, "c", late, "e"]
    assert error.successes() == {0: "a", 2: "c", 4: "e"}
    assert early.__notes__ == ["anyfan: raised by the call for item #1"]
    assert late.__notes__ == ["anyfan: raised by the call for item #3"]


def test_collect_message_agrees_in_number() -> None:
    collector = Collector("collect")
    collector.reserve()
    collector.fail(0, ValueError())
    with pytest.raises(FanError, match=r"^1 of 1 call failed"):
        collector.outcome()


def test_raise_policy_reports_what_was_observed_without_results() -> None:
    collector = Collector("raise")
    for _ in range(4):
        collector.reserve()
    error = RuntimeError("first")
    collector.succeed(0, "a")
    collector.fail(2, error)
    with pytest.raises(FanError) as info:
        collector.outcome()
    assert str(info.value) == "1 call failed before the fan-out stopped (1 sub-exception)"
    assert info.value.failures == [(2, error)]
    assert info.value.results is None
    assert info.value.successes() == {}


def test_raise_policy_plural_message() -> None:
    collector = Collector("raise")
    for index in range(2):
        collector.reserve()
        collector.fail(index, ValueError(index))
    with pytest.raises(FanError, match=r"^2 calls failed before the fan-out stopped"):
        collector.outcome()


@settings(max_examples=100, deadline=None)
@given(
    policy=error_policies,
    fates=st.lists(st.booleans(), max_size=30).flatmap(
        lambda fails: st.tuples(st.just(fails), st.permutations(range(len(fails))))
    ),
)
def test_every_policy_reports_exactly_the_failures(
    policy: str, fates: tuple[list[bool], list[int]]
) -> None:
    fails, finish_order = fates
    collector = Collector(policy)  # type: ignore[arg-type]
    for _ in fails:
        collector.reserve()
    errors = {i: ValueError(i) for i, failed in enumerate(fails) if failed}
    for index in finish_order:
        if fails[index]:
            collector.fail(index, errors[index])
        else:
            collector.succeed(index, -index)
    expected = [errors.get(i, -i) for i in range(len(fails))]
    if policy == "return" or not errors:
        assert collector.outcome() == expected
        return
    with pytest.raises(FanError) as info:
        collector.outcome()
    assert info.value.indices == tuple(sorted(errors))
    assert list(info.value.exceptions) == [errors[i] for i in sorted(errors)]
    assert info.value.results == (expected if policy == "collect" else None)
