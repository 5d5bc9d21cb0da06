"""`Outcome`: the record of one item's fate (pure, no event loop)."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import pytest

from anyfan import Outcome
from anyfan._core._outcome import make_outcome
from strategies import check_is_a_genuine_outcome


def test_success_defaults() -> None:
    outcome = Outcome(3, "item", "value")
    assert outcome.index == 3
    assert outcome.item == "item"
    assert outcome.value == "value"
    assert outcome.error is None
    assert outcome.attempts == 1
    assert outcome.elapsed == 0.0
    assert outcome.ok
    assert outcome.unwrap() == "value"


def test_failure_unwrap_raises_the_original_error() -> None:
    error = ValueError("bad")
    outcome: Outcome[str, int] = Outcome(0, "item", error=error, attempts=2, elapsed=1.5)
    assert not outcome.ok
    assert outcome.value is None
    with pytest.raises(ValueError, match="bad") as info:
        outcome.unwrap()
    assert info.value is error


def test_success_with_none_value_is_ok() -> None:
    outcome: Outcome[int, None] = Outcome(0, 1, None)
    assert outcome.ok
    assert outcome.unwrap() is None


def test_frozen_and_slotted() -> None:
    outcome = Outcome(0, "item", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.value = 2  # type: ignore[misc]
    assert not hasattr(outcome, "__dict__")


def test_value_semantics() -> None:
    assert Outcome(1, "a", 2) == Outcome(1, "a", 2)
    assert Outcome(1, "a", 2) != Outcome(1, "a", 3)
    assert hash(Outcome(1, "a", 2)) == hash(Outcome(1, "a", 2))
    assert repr(Outcome(1, "a", 2)) == (
        "Outcome(index=1, item='a', value=2, error=None, attempts=1, elapsed=0.0)"
    )


@pytest.mark.parametrize(
    "fields",
    [(0, "item", "value", None, 1, 0.25), (7, ("a", 1), None, ValueError("bad"), 3, 1.5)],
    ids=["success", "failure"],
)
def test_make_outcome_builds_a_genuine_outcome(fields: tuple[Any, ...]) -> None:
    outcome = make_outcome(*fields)
    if fields[3] is None:
        check_is_a_genuine_outcome(outcome, Outcome(*fields))
    else:
        # Exceptions compare by identity, so pickled copies compare by fields.
        assert (type(outcome), outcome.ok, outcome.error) == (Outcome, False, fields[3])
        assert outcome == Outcome(*fields)
        back = pickle.loads(pickle.dumps(outcome))
        assert (type(back), back.index, back.attempts) == (Outcome, 7, 3)
        assert type(back.error) is ValueError
