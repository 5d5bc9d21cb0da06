"""The engine: sans-I/O logic plus a thin anyio scheduling layer. Imports nothing above it.

This module is the engine's surface for the packages above it (the facade, the OpenAI
adapter, the batch job, the CLI, the transports, the simulator): they import from here,
never from an underscored module, the way anyio re-exports its ``_core`` names.
"""

from ._api import gather, map, stream
from ._budget import RetryBudget
from ._clock import loop_clock, loop_token
from ._engine import Outcomes, as_async, check_callable, is_async_callable
from ._errors import CostTooLarge, DeadlineExceeded, FanError, Misuse, StoreUnavailable
from ._fan import Fan, Items, close_unstarted
from ._first import first
from ._group import Group
from ._hooks import PauseEvent, RetryEvent
from ._options import (
    DEFAULT_CONCURRENCY,
    CallOptions,
    ErrorPolicy,
    FanOptions,
    GatherOptions,
    MapOptions,
    StreamOptions,
    WrapOptions,
    check_seconds,
)
from ._outcome import Outcome
from ._progress import Progress, ProgressOptions
from ._rate import Rate
from ._retry import Retry
from ._sent import note_sent, send_pending
from ._solo import RateTicket
from ._stats import FanStats, LimitStats
from ._store import QuotaSpec, RateStore, StoredCharge
from ._telemetry import Telemetry
from ._telemetry import install as install_telemetry
from ._telemetry import installed as installed_telemetry
from ._validate import (
    check_function,
    check_int,
    check_number,
    check_optional_int,
    check_optional_number,
)

__all__ = [
    "CallOptions",
    "CostTooLarge",
    "DEFAULT_CONCURRENCY",
    "DeadlineExceeded",
    "ErrorPolicy",
    "Fan",
    "FanError",
    "FanOptions",
    "FanStats",
    "GatherOptions",
    "Group",
    "Items",
    "LimitStats",
    "MapOptions",
    "Misuse",
    "Outcome",
    "Outcomes",
    "PauseEvent",
    "Progress",
    "ProgressOptions",
    "QuotaSpec",
    "Rate",
    "RateStore",
    "RateTicket",
    "Retry",
    "RetryBudget",
    "RetryEvent",
    "StoreUnavailable",
    "StoredCharge",
    "StreamOptions",
    "Telemetry",
    "WrapOptions",
    "as_async",
    "check_callable",
    "check_function",
    "check_int",
    "check_number",
    "check_optional_int",
    "check_optional_number",
    "check_seconds",
    "close_unstarted",
    "first",
    "gather",
    "install_telemetry",
    "installed_telemetry",
    "is_async_callable",
    "loop_clock",
    "loop_token",
    "map",
    "note_sent",
    "send_pending",
    "stream",
]
