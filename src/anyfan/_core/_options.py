"""The options of a fan-out: their types (typed once, for every entry point) and defaults.

Numbers are checked by `_validate`; the checks here name the option they are about.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, TypeAlias, TypedDict

from ._hooks import OnPause, OnRetry
from ._progress import Observer, Progress
from ._retry import Retry
from ._validate import check_int, check_optional_number

ErrorPolicy: TypeAlias = Literal["raise", "collect", "return"]
ERROR_POLICIES: Final = ("raise", "collect", "return")

#: Calls in flight when nobody says otherwise. Finite so that a careless
#: ``map`` over a million items cannot open a million sockets; 32 keeps well
#: inside the connection pools of the common HTTP clients (100 by default).
DEFAULT_CONCURRENCY: Final = 32

#: A worker that never has to wait (its calls finish synchronously) still yields
#: to the event loop after this many items, so siblings, timeouts and
#: cancellation get a turn. (A plain stream's workers wait on its bounded buffer
#: instead, and its consumer yields once per batch it takes.)
CHECKPOINT_EVERY: Final = 32


class FanOptions(TypedDict, total=False):
    """The options a `Fan` is built with, besides ``concurrency`` (see `Fan`).

    A `TypedDict`, so that wrappers can take ``**options: Unpack[FanOptions]``
    and a misspelt keyword is a type error.
    """

    timeout: float | None
    errors: ErrorPolicy
    limits: Iterable[Any]
    retry: Retry | None
    on_retry: OnRetry | None
    on_pause: OnPause | None


class WrapOptions(TypedDict, total=False):
    """The keyword options of `Fan.wrap`: each left out means the Fan's own."""

    timeout: float | None
    limits: Iterable[Any]
    retry: Retry | None


class CallOptions(WrapOptions, total=False):
    """The keyword options of `Fan.call`: those of `Fan.wrap`, and ``on_outcome``."""

    on_outcome: Observer | None


class MapOptions(TypedDict, total=False):
    """The keyword options of ``map`` besides ``errors`` (see `Fan.map`).

    On a `Fan`, ``timeout`` and ``retry`` left out mean the Fan's own, and
    ``concurrency`` can only lower the Fan's.
    """

    concurrency: int
    timeout: float | None
    deadline: float | None
    limits: Iterable[Any]
    retry: Retry | None
    progress: Progress
    on_outcome: Observer | None


class StreamOptions(MapOptions, total=False):
    """The keyword options of ``stream``: those of ``map``, and ``ordered``."""

    ordered: bool


class GatherOptions(TypedDict, total=False):
    """The keyword options of ``gather``."""

    concurrency: int | None
    errors: ErrorPolicy


def check_keywords(options: Mapping[str, Any], allowed: type[Any], function: str) -> None:
    """Reject a keyword that ``allowed`` (a `TypedDict`) does not list, as Python would.

    Raises:
        TypeError: Naming the first unexpected keyword.
    """
    known = allowed.__optional_keys__ | allowed.__required_keys__
    for name in options:
        if name not in known:
            raise TypeError(f"{function}() got an unexpected keyword argument {name!r}")


def check_concurrency(value: object, *, name: str = "concurrency") -> int:
    """Return ``value`` if it is an int of at least 1, else raise naming the problem."""
    return check_int(value, name, minimum=1)


def check_seconds(value: object, *, name: str) -> float | None:
    """Return ``value`` as a float if it is ``None`` or a positive finite number."""
    return check_optional_number(value, name)


def check_errors(value: object) -> ErrorPolicy:
    """Return ``value`` if it names an error policy."""
    if value not in ERROR_POLICIES:
        raise ValueError(
            f"errors must be one of {', '.join(map(repr, ERROR_POLICIES))}, got {value!r}"
        )
    return value  # type: ignore[return-value,unused-ignore]
