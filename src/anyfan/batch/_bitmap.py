"""A growable set of line numbers, one bit each (sans-I/O)."""

from __future__ import annotations


class Bitmap:
    """A set of non-negative integers stored as bits in a `bytearray`.

    Memory is one bit per number up to the largest added: 1.25 MB for ten
    million lines, whichever of them are set.
    """

    __slots__ = ("_bits", "_count")

    def __init__(self) -> None:
        self._bits = bytearray()
        self._count = 0

    def add(self, n: int) -> bool:
        """Set ``n``; return whether it was newly set.

        Raises:
            ValueError: ``n`` is negative.
        """
        if n < 0:
            raise ValueError(f"bitmap positions are non-negative, got {n}")
        byte, mask = n >> 3, 1 << (n & 7)
        bits = self._bits
        if byte >= len(bits):
            # Grow at least geometrically so that adding lines in order costs O(1) amortised.
            bits.extend(bytes(max(byte + 1, 2 * len(bits)) - len(bits)))
        if bits[byte] & mask:
            return False
        bits[byte] |= mask
        self._count += 1
        return True

    def discard(self, n: int) -> bool:
        """Clear ``n``; return whether it was set."""
        if n not in self:
            return False
        self._bits[n >> 3] &= ~(1 << (n & 7)) & 0xFF
        self._count -= 1
        return True

    def __contains__(self, n: object) -> bool:
        if not isinstance(n, int) or n < 0:
            return False
        byte = n >> 3
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << (n & 7)))

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes of storage in use."""
        return len(self._bits)
