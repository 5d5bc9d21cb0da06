"""anyfan: send many slow I/O calls at once, on asyncio, trio or from sync code.

The names below are the public API; everything in underscored modules is not.
"""

# The facade sits on top of the engine; imported last so the engine never needs it.
from . import blocking
from ._core._api import gather, map, stream
from ._core._budget import RetryBudget
from ._core._engine import Outcomes
from ._core._errors import DeadlineExceeded, FanError
from ._core._fan import Fan
from ._core._first import first
from ._core._group import Group
from ._core._hooks import PauseEvent, RetryEvent
from ._core._options import DEFAULT_CONCURRENCY, ErrorPolicy
from ._core._outcome import Outcome
from ._core._rate import Rate
from ._core._retry import Retry
from ._core._solo import RateTicket
from ._core._stats import FanStats, LimitStats
from ._version import __version__
from .blocking import Executor

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DeadlineExceeded",
    "ErrorPolicy",
    "Executor",
    "Fan",
    "FanError",
    "FanStats",
    "Group",
    "LimitStats",
    "Outcome",
    "Outcomes",
    "PauseEvent",
    "Rate",
    "RateTicket",
    "Retry",
    "RetryBudget",
    "RetryEvent",
    "__version__",
    "blocking",
    "first",
    "gather",
    "map",
    "stream",
]

# Present the public classes as anyfan's own in reprs, tracebacks and docs.
for _name in (
    "DeadlineExceeded",
    "Fan",
    "FanError",
    "FanStats",
    "Group",
    "LimitStats",
    "Outcome",
    "Outcomes",
    "PauseEvent",
    "Rate",
    "RateTicket",
    "Retry",
    "RetryBudget",
    "RetryEvent",
):
    globals()[_name].__module__ = __name__
del _name
