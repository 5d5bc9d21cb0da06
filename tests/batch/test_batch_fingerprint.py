from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anyfan.batch import InputFingerprint, fingerprint_file
from anyfan.batch._fingerprint import (
    HEAD,
    SAMPLES,
    SPAN,
    TAIL,
    canonical_options,
    diff_input,
    diff_options,
    sample_spans,
)

if TYPE_CHECKING:
    from pathlib import Path

SMALL = HEAD + TAIL + SAMPLES * SPAN


def test_small_files_are_hashed_whole() -> None:
    assert sample_spans(0) == []
    assert sample_spans(10) == [(0, 10)]
    assert sample_spans(SMALL) == [(0, SMALL)]


@given(st.integers(min_value=SMALL + 1, max_value=1 << 40))
def test_large_files_are_sampled(size: int) -> None:
    spans = sample_spans(size)
    assert spans[0] == (0, HEAD)
    assert spans[-1] == (size - TAIL, TAIL)
    assert len(spans) == SAMPLES + 2
    assert sum(length for _, length in spans) == HEAD + TAIL + SAMPLES * SPAN
    ends = [offset + length for offset, length in spans]
    assert all(end <= nxt for end, (nxt, _) in zip(ends, spans[1:], strict=False))
    assert ends[-1] == size


def write(path: Path, data: bytes, mtime_ns: int = 10**18) -> InputFingerprint:
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return fingerprint_file(path)


def test_fingerprint_sees_content_size_and_time(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    base = write(path, b"abc\n")
    assert base.size == 4
    assert base.mtime_ns == 10**18
    assert base.to_json() == {"size": 4, "mtime_ns": 10**18, "sample": base.sample}
    assert write(path, b"abc\n") == base
    assert write(path, b"abd\n").sample != base.sample
    assert diff_input(base.to_json(), write(path, b"abc\n")) == []
    assert "4 bytes before" in diff_input(base.to_json(), write(path, b"abc\nx\n"))[0]
    assert "content differs" in diff_input(base.to_json(), write(path, b"xyz\n"))[0]
    changed = diff_input(base.to_json(), write(path, b"abc\n", mtime_ns=2 * 10**18))
    assert "modification time changed" in changed[0]


def test_fingerprint_of_a_large_file_reads_samples_only(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    data = bytearray(os.urandom(64)) * ((HEAD + TAIL) // 64 + 40_000)
    base = write(path, bytes(data))
    middle = HEAD + 10 * ((len(data) - HEAD - TAIL - SPAN) // (SAMPLES - 1))
    sampled = bytearray(data)
    sampled[middle] ^= 1
    assert write(path, bytes(sampled)).sample != base.sample
    assert write(path, bytes(sampled)).size == base.size
    unsampled = bytearray(data)
    unsampled[middle + SPAN + 1] ^= 1  # between two samples: only the time shows the edit
    assert write(path, bytes(unsampled)).sample == base.sample
    assert diff_input(base.to_json(), write(path, bytes(unsampled), mtime_ns=5)) != []


def test_canonical_options() -> None:
    opts = canonical_options({"b": (1, 2), "a": {"y": None, "x": 1.5}, "max_attempts": 5})
    assert opts == {"a": {"x": 1.5, "y": None}, "b": [1, 2], "max_attempts": 5}
    assert list(opts) == ["a", "b", "max_attempts"]


@pytest.mark.parametrize(
    "key", ["api_key", "OPENAI_API_KEY", "apiKey", "client_secret", "Authorization"]
)
def test_secrets_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="looks like a secret"):
        canonical_options({key: "sk-123"})


def test_options_must_be_json() -> None:
    with pytest.raises(TypeError, match="option names must be strings"):
        canonical_options({1: "x"})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="plain JSON values"):
        canonical_options({"x": object()})
    with pytest.raises(TypeError, match="plain JSON values"):
        canonical_options({"x": float("nan")})


def test_diff_options() -> None:
    old = {"base_url": "http://a", "rpm": 100, "flag": True, "same": [1]}
    new = {"base_url": "http://b", "tpm": 5, "flag": 1, "same": [1]}
    assert diff_options(old, old) == []
    assert diff_options(old, new) == [
        'option base_url was "http://a", now "http://b"',
        "option flag was true, now 1",
        "option rpm was 100, now unset",
        "option tpm was unset, now 5",
    ]
