"""Reading the input file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import os
    from collections.abc import Iterator

_CHUNK: Final = 1 << 20


def count_lines(path: str | os.PathLike[str]) -> int:
    """Lines in the file at ``path`` (a last line without a newline counts), in O(1) memory.

    A plain scan for newlines: about 1 s per few GB from the page cache.
    """
    lines = 0
    last = b"\n"
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(_CHUNK):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def numbered_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes]]:
    """Yield ``(number, line)`` for each line of the file, counting from 1, lazily."""
    with open(path, "rb", buffering=_CHUNK) as f:
        yield from enumerate(f, 1)
