"""Redis URLs: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS), ``unix://``."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

DEFAULT_PORT = 6379


@dataclass(frozen=True)
class Address:
    """Where a Redis server is, and how to log in; its repr never shows the password."""

    scheme: str
    host: str
    port: int
    path: str
    db: int
    username: str | None
    password: str | None = field(repr=False)

    @property
    def redacted(self) -> str:
        """The URL with any password replaced by ``***``."""
        login = ""
        if self.username or self.password:
            login = (self.username or "") + (":***" if self.password else "") + "@"
        if self.scheme == "unix":
            return f"unix://{login}{self.path}"
        db = f"/{self.db}" if self.db else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{login}{host}:{self.port}{db}"


def parse_url(url: str) -> Address:
    """Parse a Redis URL.

    Raises:
        TypeError: If ``url`` is not a string.
        ValueError: If it is not a ``redis://``, ``rediss://`` or ``unix://`` URL.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a string such as 'redis://localhost:6379', got {url!r}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            "url must start with redis://, rediss:// or unix:// "
            f"(such as 'redis://localhost:6379/0'), got {parts.scheme + '://...'!r}"
        )
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if scheme == "unix":
        if not parts.path:
            raise ValueError("a unix:// Redis URL needs a socket path, such as unix:///tmp/r.sock")
        return Address(scheme, "", 0, parts.path, 0, username, password)
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError("the port of the Redis URL is not a number from 0 to 65535") from None
    db_text = parts.path.strip("/") or "0"
    if not db_text.isdigit():
        raise ValueError(f"the database of a Redis URL is a number, such as /0, got {db_text!r}")
    return Address(
        scheme, parts.hostname or "localhost", port, "", int(db_text), username, password
    )
