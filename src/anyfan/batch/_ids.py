"""Remembering which custom ids are taken, compactly (sans-I/O).

A bare body's id ``line-N`` costs one bit (in a `Bitmap` by line number). Any
other id is hashed to 64 bits and kept in an open-addressing table of 8-byte
slots at most 3/4 full: 11 to 21 bytes per id (a Python ``set`` of the same
hashes costs about 70). Ten million Batch-shaped ids take 134 MB (2^24 slots),
and 201 MB for the moment the table doubles. Two distinct ids share a
hash with probability about n²/2⁶⁵ (3·10⁻⁶ for ten million ids); the later
one would then be reported as a duplicate.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from typing import Final

from ._bitmap import Bitmap

_BARE_ID: Final = re.compile(r"line-([1-9][0-9]*)")
_INITIAL_SLOTS: Final = 1024


def id_hash(custom_id: str) -> int:
    """Hash ``custom_id`` to a stable, non-zero 64-bit int (zero marks an empty slot)."""
    digest = hashlib.blake2b(custom_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


class HashSet64:
    """A set of non-zero 64-bit integers in one flat `array`, with linear probing."""

    __slots__ = ("_count", "_mask", "_slots")

    def __init__(self) -> None:
        self._slots = array("Q", [0]) * _INITIAL_SLOTS
        self._mask = _INITIAL_SLOTS - 1
        self._count = 0

    def _find(self, h: int) -> int:
        """Find the slot holding ``h``, or the empty slot where it would go."""
        slots, mask = self._slots, self._mask
        i = (h ^ (h >> 32)) & mask
        while True:
            value = slots[i]
            if value == h or value == 0:
                return i
            i = (i + 1) & mask

    def add(self, h: int) -> bool:
        """Insert ``h`` (non-zero); return whether it was new."""
        i = self._find(h)
        if self._slots[i]:
            return False
        self._slots[i] = h
        self._count += 1
        if 4 * self._count > 3 * len(self._slots):
            self._grow()
        return True

    def __contains__(self, h: int) -> bool:
        return bool(self._slots[self._find(h)])

    def _grow(self) -> None:
        old = self._slots
        self._slots = array("Q", [0]) * (2 * len(old))  # no temporary bytes of that size
        self._mask = 2 * len(old) - 1
        for h in old:
            if h:
                self._slots[self._find(h)] = h

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes of storage in use."""
        return 8 * len(self._slots)


class IdRegistry:
    """Which custom ids the lines read so far have claimed.

    A line claims its id when it is accepted; the first line to claim an id
    keeps it, and any later line with the same id is a duplicate. Replaying
    the same lines in the same order always gives the same answers, which is
    what lets a resumed job skip the lines already done and still judge the
    rest exactly as an uninterrupted run would.
    """

    __slots__ = ("_bare", "_hashes", "_line_like")

    def __init__(self) -> None:
        self._bare = Bitmap()
        self._hashes = HashSet64()
        self._line_like = 0  # Batch-shaped ids of the form line-N; usually none

    def claim(self, custom_id: str) -> bool:
        """Claim a Batch-shaped line's ``custom_id``; return False if it was taken."""
        match = _BARE_ID.fullmatch(custom_id)
        if match is not None:
            if int(match[1]) in self._bare:
                return False
            self._line_like += 1
        return self._hashes.add(id_hash(custom_id))

    def claim_bare(self, line: int) -> bool:
        """Claim ``line-N`` for the bare body on line N; return False if it was taken."""
        if self._line_like and id_hash(f"line-{line}") in self._hashes:
            return False
        return self._bare.add(line)

    def __len__(self) -> int:
        return len(self._bare) + len(self._hashes)

    @property
    def nbytes(self) -> int:
        """Bytes of storage in use."""
        return self._bare.nbytes + self._hashes.nbytes
