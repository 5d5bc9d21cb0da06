from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anyfan.batch._bitmap import Bitmap
from anyfan.batch._ids import HashSet64, IdRegistry, id_hash
from strategies import batch_line_ids


def test_bitmap_add_and_contains() -> None:
    bits = Bitmap()
    assert 5 not in bits
    assert bits.add(5)
    assert not bits.add(5)
    assert 5 in bits
    assert 4 not in bits
    assert 6 not in bits
    assert len(bits) == 1
    assert -1 not in bits
    assert "5" not in bits
    with pytest.raises(ValueError, match="non-negative"):
        bits.add(-1)


def test_bitmap_is_one_bit_per_line() -> None:
    bits = Bitmap()
    for n in range(0, 80_000, 3):
        bits.add(n)
    assert len(bits) == len(range(0, 80_000, 3))
    assert bits.nbytes <= 2 * 80_000 // 8
    assert all((n in bits) == (n % 3 == 0) for n in range(80_000))


@given(st.sets(st.integers(min_value=0, max_value=5000)))
def test_bitmap_matches_a_set(numbers: set[int]) -> None:
    bits = Bitmap()
    for n in numbers:
        assert bits.add(n)
    assert len(bits) == len(numbers)
    assert {n for n in range(5001) if n in bits} == numbers


def test_id_hash_is_stable_and_non_zero() -> None:
    # Stable across processes (not Python's randomised hash): resumes must agree with first runs.
    assert id_hash("a") == 3405396810240292928 != id_hash("b")
    assert all(0 < id_hash(str(n)) < 2**64 for n in range(100))
    assert id_hash("\ud800") != id_hash("\udc00")


def test_hash_set_grows_and_keeps_everything() -> None:
    table = HashSet64()
    start = table.nbytes
    values = [id_hash(str(n)) for n in range(10_000)]
    assert all(table.add(v) for v in values)
    assert not any(table.add(v) for v in values)
    assert len(table) == 10_000
    assert all(v in table for v in values)
    assert id_hash("absent") not in table
    assert table.nbytes > start
    # At most 3/4 full, at least 3/8 after growth: 8-byte slots cost 11-21 bytes per id.
    assert 8 * 4 / 3 <= table.nbytes / len(table) <= 8 * 8 / 3


def test_hash_set_probes_past_collisions() -> None:
    table = HashSet64()
    # Same low bits, so the same home slot: linear probing must keep them apart.
    clash = [1 + (k << 40) for k in range(1, 6)]
    for h in clash:
        assert table.add(h)
    assert all(h in table for h in clash)
    assert (1 + (9 << 40)) not in table


def test_registry_batch_ids() -> None:
    reg = IdRegistry()
    assert reg.claim("a")
    assert reg.claim("b")
    assert not reg.claim("a")
    assert len(reg) == 2


def test_registry_bare_line_then_batch_line_id() -> None:
    reg = IdRegistry()
    assert reg.claim_bare(3)
    assert not reg.claim("line-3")
    assert reg.claim("line-4")
    assert reg.claim("line-03")  # not the canonical spelling, so a different id
    assert not reg.claim_bare(4)


def test_registry_batch_line_id_then_bare_line() -> None:
    reg = IdRegistry()
    assert reg.claim("line-9")
    assert not reg.claim_bare(9)
    assert reg.claim_bare(10)
    assert reg.nbytes > 0


def test_bare_lines_cost_bits_not_table_slots() -> None:
    reg = IdRegistry()
    empty = reg.nbytes
    for n in range(1, 100_001):
        assert reg.claim_bare(n)
    assert len(reg) == 100_000
    assert reg.nbytes - empty <= 2 * 100_000 // 8


@given(batch_line_ids)
def test_registry_matches_a_plain_set(lines: list[str | None]) -> None:
    reg = IdRegistry()
    seen: set[str] = set()
    for number, custom_id in enumerate(lines, 1):
        effective = f"line-{number}" if custom_id is None else custom_id
        expected = effective not in seen
        got = reg.claim_bare(number) if custom_id is None else reg.claim(custom_id)
        assert got == expected, (number, custom_id)
        seen.add(effective)
