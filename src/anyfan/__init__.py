"""anyfan: send many slow I/O calls at once, on asyncio, trio or from sync code.

The names below are the public API; everything in underscored modules is not.
"""

# The facade sits on top of the engine; imported last so the engine never needs it.
from . import blocking
from ._core import (
    DEFAULT_CONCURRENCY,
    CallOptions,
    CostTooLarge,
    DeadlineExceeded,
    ErrorPolicy,
    Fan,
    FanError,
    FanOptions,
    FanStats,
    GatherOptions,
    Group,
    LimitStats,
    MapOptions,
    Outcome,
    Outcomes,
    PauseEvent,
    ProgressOptions,
    Rate,
    RateTicket,
    Retry,
    RetryBudget,
    RetryEvent,
    StoreUnavailable,
    StreamOptions,
    WrapOptions,
    first,
    gather,
    map,
    stream,
)
from ._version import __version__
from .blocking import Executor

__all__ = [
    "DEFAULT_CONCURRENCY",
    "CallOptions",
    "CostTooLarge",
    "DeadlineExceeded",
    "ErrorPolicy",
    "Executor",
    "Fan",
    "FanError",
    "FanOptions",
    "FanStats",
    "GatherOptions",
    "Group",
    "LimitStats",
    "MapOptions",
    "Outcome",
    "Outcomes",
    "PauseEvent",
    "ProgressOptions",
    "Rate",
    "RateTicket",
    "Retry",
    "RetryBudget",
    "RetryEvent",
    "StoreUnavailable",
    "StreamOptions",
    "WrapOptions",
    "__version__",
    "blocking",
    "first",
    "gather",
    "map",
    "stream",
]

# Present the engine's public classes as anyfan's own in reprs, tracebacks and docs.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith(f"{__name__}._core"):
        _obj.__module__ = __name__
del _name, _obj
