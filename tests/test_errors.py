"""`FanError` and `DeadlineExceeded` (pure, no event loop)."""

from __future__ import annotations

import pytest

from anyfan import DeadlineExceeded, FanError


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
