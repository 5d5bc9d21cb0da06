"""`Reorderer`: putting out-of-order results back into input order (pure, no event loop)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anyfan._core._ordering import Reorderer


def test_in_order_entries_pass_straight_through() -> None:
    reorder: Reorderer[str] = Reorderer()
    assert reorder.push(0, "a") == ["a"]
    assert reorder.push(1, "b") == ["b"]
    assert reorder.next_index == 2
    assert reorder.pending == 0


def test_out_of_order_entries_are_held_until_the_gap_fills() -> None:
    reorder: Reorderer[str] = Reorderer()
    assert reorder.push(2, "c") == []
    assert reorder.push(1, "b") == []
    assert reorder.pending == 2
    assert reorder.next_index == 0
    assert reorder.push(0, "a") == ["a", "b", "c"]
    assert reorder.pending == 0
    assert reorder.next_index == 3
    assert reorder.push(4, "e") == []
    assert reorder.pending == 1


def test_start_offset() -> None:
    reorder: Reorderer[int] = Reorderer(start=5)
    assert reorder.next_index == 5
    assert reorder.push(6, 6) == []
    assert reorder.push(5, 5) == [5, 6]


@pytest.mark.parametrize(("pushed", "again"), [([0], 0), ([2], 2), ([0, 1], 0)])
def test_duplicate_index_is_rejected(pushed: list[int], again: int) -> None:
    reorder: Reorderer[int] = Reorderer()
    for index in pushed:
        reorder.push(index, index)
    with pytest.raises(ValueError, match=f"index {again} was already pushed"):
        reorder.push(again, again)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 40).flatmap(lambda n: st.permutations(range(n))))
def test_any_arrival_order_is_released_in_input_order(order: list[int]) -> None:
    reorder: Reorderer[int] = Reorderer()
    released: list[int] = []
    for pushed, index in enumerate(order, start=1):
        ready = reorder.push(index, index)
        # Each release is a contiguous run starting where the last one stopped.
        assert ready == list(range(len(released), len(released) + len(ready)))
        released.extend(ready)
        assert reorder.pending == pushed - len(released)
    assert released == sorted(order)
    assert reorder.pending == 0
