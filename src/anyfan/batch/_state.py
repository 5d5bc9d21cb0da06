"""The state file beside the results: what the results were made from.

``RESULTS.jsonl.anyfan.json`` holds the input's fingerprint and the options
that affect results. It is replaced atomically (write, fsync, rename), so it
is always either the old or the new version, never a mix.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from typing import TYPE_CHECKING, Any, Final

from ._errors import JournalError

if TYPE_CHECKING:
    from pathlib import Path

FORMAT: Final = "anyfan-batch-state"
VERSION: Final = 1
SUFFIX: Final = ".anyfan.json"
KEY_BYTES: Final = 32


def state_path(output: Path) -> Path:
    """Where the state file for the results at ``output`` lives."""
    return output.with_name(output.name + SUFFIX)


def read_state(path: Path) -> dict[str, Any] | None:
    """Read the state stored at ``path``; ``None`` if there is none.

    Raises:
        JournalError: The file exists but is not an anyfan state file this
            version can read.
    """
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        state = json.loads(text)
    except (ValueError, RecursionError):
        state = None
    if (
        not isinstance(state, dict)
        or state.get("format") != FORMAT
        or not isinstance(state.get("input"), dict)
        or not isinstance(state.get("options"), dict)
    ):
        raise JournalError(f"{path} is not an anyfan batch state file")
    if state.get("version") != VERSION:
        raise JournalError(
            f"{path} was written by a different anyfan version (state format "
            f"{state.get('version')!r}, this one reads {VERSION})"
        )
    return state


def state_key(path: Path) -> bytes:
    """The key of the keyed hashes stored at ``path``: the one it holds, or a new random one.

    Keeping the key across runs is what lets a rerun compare a password's hash
    without the password ever being stored.
    """
    try:
        state = read_state(path)
    except JournalError:
        state = None
    text = state.get("key") if state is not None else None
    if isinstance(text, str):
        with contextlib.suppress(ValueError):
            key = bytes.fromhex(text)
            if len(key) == KEY_BYTES:
                return key
    return secrets.token_bytes(KEY_BYTES)


def write_state(
    path: Path,
    input_fp: dict[str, Any],
    options: dict[str, Any],
    *,
    hashes: dict[str, str] | None = None,
    key: bytes | None = None,
) -> None:
    """Replace the state at ``path`` atomically (readable by its owner only).

    ``hashes`` are keyed hashes of the secrets in the options, made with ``key``.
    """
    state: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "input": input_fp,
        "options": options,
    }
    if hashes:
        state["secrets"] = hashes
    if key is not None:
        state["key"] = key.hex()
    tmp = path.with_name(path.name + ".tmp")
    # Owner-only (0o600): the state is the job's own, and names the base URL.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o600)
    if hasattr(os, "fchmod"):  # pragma: no branch - a leftover .tmp keeps its mode through O_CREAT
        os.fchmod(fd, 0o600)
    with open(fd, "wb") as f:
        f.write(json.dumps(state, indent=2, sort_keys=True).encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _sync_dir(path.parent)


def _sync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
