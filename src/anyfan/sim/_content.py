"""Deterministic fake content: the same request body always gets the same reply (sans-I/O).

A reply is a pure function of the seed and the request body, less its
``stream``/``stream_options`` keys (so a streamed and a plain call agree) and
of nothing else: not the time, not the order of arrival, not the retry. A job
that resends a request after a crash gets the body it would have got before.

Every fake token is a three-letter word, after a space but for the first one:
four characters, so the reply measures as its own token count under the
``ceil(chars / 4)`` heuristic.
"""

from __future__ import annotations

import array
import base64
import hashlib
import json
import random
import sys
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

_CONSONANTS: Final = "bdfgklmp"
_VOWELS: Final = "aeio"
_FINALS: Final = "nrstlkmp"
#: 256 pronounceable words, one per byte value.
VOCABULARY: Final = tuple(c + v + f for c in _CONSONANTS for v in _VOWELS for f in _FINALS)
_SPACED: Final = tuple(" " + word for word in VOCABULARY)

_STREAM_KEYS: Final = frozenset(("stream", "stream_options"))
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def request_digest(body: Mapping[str, Any], seed: int) -> bytes:
    """Fingerprint a request body under ``seed`` in 16 bytes, ignoring how it is delivered."""
    if "stream" in body or "stream_options" in body:
        body = {key: value for key, value in body.items() if key not in _STREAM_KEYS}
    return hashlib.blake2b(
        _canonical(body).encode(), digest_size=16, key=seed.to_bytes(8, "little", signed=True)
    ).digest()


def reply_length(digest: bytes, choice: int, shortest: int, longest: int) -> int:
    """Return the natural length of reply ``choice``, before ``max_tokens`` cuts it."""
    spread = longest - shortest + 1
    return shortest + (int.from_bytes(digest[:8], "little") + 7919 * choice) % spread


def reply_tokens(digest: bytes, choice: int, count: int) -> list[str]:
    """Return the ``count`` tokens of reply ``choice``; joined, they are its text."""
    picks = hashlib.shake_128(digest + choice.to_bytes(4, "little")).digest(count)
    spaced = _SPACED
    tokens = [spaced[byte] for byte in picks]
    if tokens:
        tokens[0] = VOCABULARY[picks[0]]
    return tokens


def reply_text(digest: bytes, choice: int, count: int) -> str:
    """Return the text of reply ``choice``: its ``count`` tokens joined (no list built)."""
    picks = hashlib.shake_128(digest + choice.to_bytes(4, "little")).digest(count)
    return "".join([_SPACED[byte] for byte in picks])[1:]


def response_id(digest: bytes) -> str:
    """Return the stable part of a response's id (``chatcmpl-<this>``)."""
    return digest.hex()[:24]


class EmbeddingPool:
    """Fake embeddings: each vector is a window of one seeded pool of float32 values.

    Slicing a pool is far cheaper than drawing fresh numbers per request, and a
    float32 pool makes the ``float`` and ``base64`` encodings agree exactly.
    """

    def __init__(self, seed: int, size: int, longest: int) -> None:
        rng = random.Random(seed)
        pool = array.array("f", (rng.uniform(-1.0, 1.0) for _ in range(size + longest)))
        self._floats = pool.tolist()
        if sys.byteorder == "big":  # pragma: no cover - the wire format is little-endian
            pool.byteswap()
        self._bytes = pool.tobytes()
        self._size = size
        self.seed = seed

    def _offset(self, model: str, item: object, dimensions: int) -> int:
        key = json.dumps([model, item, dimensions], separators=(",", ":"))
        digest = hashlib.blake2b(
            key.encode(), digest_size=8, key=self.seed.to_bytes(8, "little", signed=True)
        ).digest()
        return int.from_bytes(digest, "little") % self._size

    def floats(self, model: str, item: object, dimensions: int) -> list[float]:
        """Return the embedding of ``item`` as a list of floats."""
        start = self._offset(model, item, dimensions)
        return self._floats[start : start + dimensions]

    def base64(self, model: str, item: object, dimensions: int) -> str:
        """Return the embedding as base64 of little-endian float32 (OpenAI's ``base64``)."""
        start = self._offset(model, item, dimensions) * 4
        return base64.b64encode(self._bytes[start : start + 4 * dimensions]).decode()
