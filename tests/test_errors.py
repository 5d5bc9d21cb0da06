"""`FanError` and `DeadlineExceeded` (pure, no event loop)."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anyfan import DeadlineExceeded, FanError, Outcome


def make_error(results: list[object] | None = None) -> tuple[FanError, list[Exception]]:
    excs: list[Exception] = [ValueError("v1"), KeyError("k"), ValueError("v2")]
    return FanError("3 calls failed", excs, indices=[1, 4, 7], results=results), excs


def test_is_an_exception_group_with_indices() -> None:
    error, excs = make_error()
    assert isinstance(error, ExceptionGroup)
    assert error.message == "3 calls failed"
    assert error.exceptions == tuple(excs)
    assert error.indices == (1, 4, 7)
    assert error.failures == [(1, excs[0]), (4, excs[1]), (7, excs[2])]
    assert error.results is None
    assert error.successes() == {}


def test_successes_skip_failed_indices() -> None:
    failed = ValueError()
    error = FanError("m", [failed], indices=[1], results=["a", failed, "c"])
    assert error.successes() == {0: "a", 2: "c"}


def test_one_index_per_exception_is_required() -> None:
    with pytest.raises(ValueError, match="exactly one index per exception"):
        FanError("m", [ValueError()], indices=[0, 1])


def test_except_star_keeps_indices_and_results() -> None:
    results: list[object] = ["r"]
    error, excs = make_error(results)
    matched: list[BaseExceptionGroup[Exception]] = []

    def handle_values() -> None:
        try:
            raise error
        except* ValueError as group:
            matched.append(group)

    with pytest.raises(FanError) as rest:
        handle_values()
    (values,) = matched
    assert isinstance(values, FanError)
    assert values.exceptions == (excs[0], excs[2])
    assert values.indices == (1, 7)
    assert values.results is results
    assert rest.value.exceptions == (excs[1],)
    assert rest.value.indices == (4,)


def test_split_and_subgroup_keep_indices() -> None:
    error, excs = make_error()
    keys, others = error.split(KeyError)
    assert isinstance(keys, FanError)
    assert isinstance(others, FanError)
    assert keys.failures == [(4, excs[1])]
    assert others.failures == [(1, excs[0]), (7, excs[2])]
    sub = error.subgroup(lambda exc: str(exc) == "v2")
    assert isinstance(sub, FanError)
    assert sub.failures == [(7, excs[2])]


def test_derive_keeps_indices_through_nested_groups() -> None:
    # A call may itself raise an ExceptionGroup; splitting must still find its index.
    inner_key, inner_value = KeyError("inner"), ValueError("inner")
    nested = ExceptionGroup("from call #2", [inner_key, ExceptionGroup("deeper", [inner_value])])
    plain = TypeError("plain")
    error = FanError("2 calls failed", [nested, plain], indices=[2, 5])

    values, rest = error.split(ValueError)
    assert isinstance(values, FanError)
    assert values.indices == (2,)
    (projected,) = values.exceptions
    assert isinstance(projected, ExceptionGroup)
    assert projected is not nested
    assert projected.exceptions[0].exceptions == (inner_value,)  # type: ignore[union-attr]
    assert isinstance(rest, FanError)
    assert rest.indices == (2, 5)

    caught: list[BaseExceptionGroup[Exception]] = []
    try:
        raise error
    except* KeyError as group:
        caught.append(group)
    except* (ValueError, TypeError):
        pass
    assert [type(g) for g in caught] == [FanError]
    assert [g.indices for g in caught] == [(2,)]  # type: ignore[attr-defined]


def test_derive_refuses_exceptions_it_does_not_hold() -> None:
    error, _ = make_error()
    with pytest.raises(ValueError, match="exactly one index per exception"):
        error.derive([RuntimeError("stranger")])


def test_deadline_exceeded() -> None:
    finished = {0: "a", 3: ValueError("x")}
    error = DeadlineExceeded(1.5, finished)
    assert isinstance(error, TimeoutError)
    assert str(error) == "fan-out deadline of 1.5s exceeded with 2 item(s) finished"
    assert error.deadline == 1.5
    assert error.completed == finished
    finished.clear()
    assert len(error.completed) == 2, "completed is a copy"


# Picklable values for failed items and successes, so a round trip compares equal.
_values = st.one_of(st.integers(), st.text(max_size=5), st.none())


@given(st.lists(st.tuples(st.booleans(), _values), max_size=30), st.booleans())
def test_fan_error_round_trips_through_pickle(
    items: list[tuple[bool, object]], collect: bool
) -> None:
    # Multiprocessing and Dask ship exceptions between processes by pickling them.
    results: list[object] = []
    failures: list[tuple[int, Exception]] = []
    for i, (failed, value) in enumerate(items):
        if failed:
            exc = ValueError(value)
            failures.append((i, exc))
            results.append(exc)
        else:
            results.append(value)
    if not failures:
        failures = [(len(results), KeyError("last"))]
        results.append(failures[0][1])
    error = FanError(
        "calls failed",
        [e for _, e in failures],
        indices=[i for i, _ in failures],
        results=results if collect else None,
    )
    error.add_note("a note")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is FanError
    assert copy.message == error.message
    assert copy.indices == error.indices
    assert [(i, type(e), e.args) for i, e in copy.failures] == [
        (i, type(e), e.args) for i, e in error.failures
    ]
    assert copy.successes() == error.successes()
    assert copy.__notes__ == ["a note"]
    # The copy still splits by type with its indices.
    match, _ = copy.split(KeyError)
    expected = tuple(i for i, e in failures if isinstance(e, KeyError))
    assert (match.indices if match is not None else ()) == expected


def test_deadline_exceeded_and_outcome_round_trip_through_pickle() -> None:
    error = DeadlineExceeded(0.25, {0: "a", 2: 7})
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is DeadlineExceeded
    assert (copy.deadline, copy.completed, str(copy)) == (0.25, {0: "a", 2: 7}, str(error))
    outcome = Outcome(3, "item", error=ValueError("x"), attempts=2, elapsed=1.5)
    back = pickle.loads(pickle.dumps(outcome))
    assert (back.index, back.item, back.attempts, back.elapsed, back.ok) == (
        3,
        "item",
        2,
        1.5,
        False,
    )
    assert type(back.error) is ValueError
    assert back.error.args == ("x",)
    assert pickle.loads(pickle.dumps(Outcome(0, 1, value=2))).unwrap() == 2


def test_except_star_over_many_failures_keeps_every_index() -> None:
    n = 3_000  # quadratic derive took seconds here; linear is instant
    excs: list[Exception] = [ValueError(i) if i % 2 else KeyError(i) for i in range(n)]
    error = FanError("m", excs, indices=range(n))
    seen: list[int] = []
    try:
        raise error
    except* ValueError as group:
        seen += group.indices  # type: ignore[attr-defined]
    except* KeyError as group:
        seen += group.indices  # type: ignore[attr-defined]
    assert sorted(seen) == list(range(n))
