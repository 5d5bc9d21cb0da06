"""Recognising the same input file and the same options on a rerun.

The input's fingerprint is its size, its modification time and a BLAKE2b hash
of samples: the first and last MiB and 64 spans of 4 KiB spread evenly between
(the whole file when it is smaller than that). It costs about 2.3 MB of reads
however large the file, so checking a 10M-line file before a resume is
instant. Appending, truncating or rewriting the file changes its size or its
samples; an edit that keeps the size and misses the samples still changes the
modification time. Copying the file elsewhere changes only the time: the
message then says the content looks the same, and ``force`` continues.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote, urlsplit, urlunsplit

if TYPE_CHECKING:
    from collections.abc import Mapping

HEAD: Final = 1 << 20
TAIL: Final = 1 << 20
SAMPLES: Final = 64
SPAN: Final = 4096

REDACTED: Final = "[redacted]"
_SECRET: Final = re.compile(r"api[_-]?key|secret|password|authori[sz]ation|bearer", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class InputFingerprint:
    """What identifies an input file's content, cheaply.

    Attributes:
        size: Its size in bytes.
        mtime_ns: Its modification time, in nanoseconds since the epoch.
        sample: Hex BLAKE2b digest of the size and the sampled spans.
    """

    size: int
    mtime_ns: int
    sample: str

    def to_json(self) -> dict[str, Any]:
        """Return the fingerprint as a JSON object."""
        return asdict(self)


def sample_spans(size: int) -> list[tuple[int, int]]:
    """Return the ``(offset, length)`` spans hashed for a file of ``size`` bytes, in order."""
    if size <= HEAD + TAIL + SAMPLES * SPAN:
        return [(0, size)] if size else []
    middle_start, middle_end = HEAD, size - TAIL
    step = (middle_end - middle_start - SPAN) // (SAMPLES - 1)
    spans = [(0, HEAD)]
    spans += [(middle_start + i * step, SPAN) for i in range(SAMPLES)]
    spans.append((middle_end, TAIL))
    return spans


def fingerprint_file(path: str | os.PathLike[str]) -> InputFingerprint:
    """Fingerprint the file at ``path`` (about 2.3 MB of reads at most)."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        digest = hashlib.blake2b(st.st_size.to_bytes(8, "little"), digest_size=16)
        for offset, length in sample_spans(st.st_size):
            f.seek(offset)
            digest.update(f.read(length))
    return InputFingerprint(st.st_size, st.st_mtime_ns, digest.hexdigest())


def diff_input(old: Mapping[str, Any], new: InputFingerprint) -> list[str]:
    """How the input differs from the one the results were started with (empty: same)."""
    if old.get("size") != new.size:
        return [f"the input is {new.size:,} bytes now, {old.get('size')!r} bytes before"]
    if old.get("sample") != new.sample:
        return ["the input's content differs (its sampled parts changed)"]
    if old.get("mtime_ns") != new.mtime_ns:
        return [
            "the input's modification time changed, though its size and sampled "
            "content are the same (an edit, or a copy or touch of the same file)"
        ]
    return []


def canonical_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Check and normalise the options that affect results, for storing and comparing.

    Raises:
        TypeError: A key is not a string, or a value is not plain JSON.
        ValueError: A key names a secret (an API key must never be stored).
    """
    for key in options:
        if not isinstance(key, str):
            raise TypeError(f"option names must be strings, got {key!r}")
        if _SECRET.search(key):
            raise ValueError(
                f"option {key!r} looks like a secret; secrets must not be part of a job's "
                "fingerprint, since it is stored next to the results"
            )
    try:
        text = json.dumps(dict(options), sort_keys=True, allow_nan=False)
        canonical: dict[str, Any] = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"options must be plain JSON values: {exc}") from None
    return canonical


def _shown(value: Any) -> str:
    # A state file written before passwords were redacted may still hold one: never print it.
    if isinstance(value, str):
        value = redact_url(value)[0]
    return json.dumps(value, sort_keys=True)


def diff_options(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """How the options differ from the ones the results were started with (empty: same)."""
    changes = []
    for key in sorted(old.keys() | new.keys()):
        if key not in new:
            changes.append(f"option {key} was {_shown(old[key])}, now unset")
        elif key not in old:
            changes.append(f"option {key} was unset, now {_shown(new[key])}")
        else:
            # Compare encodings: in Python, True == 1 == 1.0, but as options they differ.
            before, after = (
                json.dumps(old[key], sort_keys=True),
                json.dumps(new[key], sort_keys=True),
            )
            if before != after:
                changes.append(f"option {key} was {_shown(old[key])}, now {_shown(new[key])}")
    return changes


@dataclass(frozen=True, slots=True)
class RedactedOptions:
    """Options with the passwords in their URLs taken out, for storing and printing.

    Attributes:
        options: The options, each URL's password replaced by ``[redacted]``.
        hashes: Per option holding one, a keyed hash of its URL's password:
            what a rerun compares, never the password itself.
        secrets: Every form in which those passwords could show up in what the
            job writes: as typed in the URL, percent-decoded, and inside the
            ``Authorization: Basic`` header built from it.
    """

    options: dict[str, Any]
    hashes: dict[str, str]
    secrets: tuple[str, ...]


def secret_hash(key: bytes, secret: str) -> str:
    """A keyed BLAKE2b hash of ``secret``: equal for equal secrets under one key, nothing more."""
    data = secret.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, key=key, digest_size=16).hexdigest()


def redact_url(url: str) -> tuple[str, str | None, str | None]:
    """``url`` with its password replaced, the password as written, and the user name.

    A URL without a password comes back as it is, with ``None`` twice.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None, None
    if not parts.scheme or parts.password is None:
        return url, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    netloc = f"{user}:{REDACTED}@{hostport}"
    return urlunsplit(parts._replace(netloc=netloc)), password, user


def redact_options(options: Mapping[str, Any], key: bytes) -> RedactedOptions:
    """Take the passwords out of the URL-valued options (see `RedactedOptions`)."""
    clean: dict[str, Any] = {}
    hashes: dict[str, str] = {}
    secrets: list[str] = []
    for name, value in options.items():
        if isinstance(value, str):
            redacted, password, user = redact_url(value)
            if password is not None and user is not None:
                clean[name] = redacted
                plain = unquote(password)
                hashes[name] = secret_hash(key, plain)
                basic = base64.b64encode(f"{unquote(user)}:{plain}".encode()).decode()
                secrets += [s for s in (password, plain, basic) if s]
                continue
        clean[name] = value
    return RedactedOptions(clean, hashes, tuple(dict.fromkeys(secrets)))


def diff_secrets(old: Mapping[str, Any], new: RedactedOptions) -> list[str]:
    """Which options' passwords changed, judged by their keyed hashes (made with one key)."""
    return [
        f"option {name}: the password in it changed (compared by a keyed hash)"
        for name in sorted(old.keys() | new.hashes.keys())
        if old.get(name) != new.hashes.get(name)
    ]
