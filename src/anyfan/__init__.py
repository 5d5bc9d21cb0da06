"""anyfan: send many slow I/O calls at once, on asyncio, trio or from sync code.

The names below are the public API; everything in underscored modules is not.
"""

from ._core._api import gather, map, stream
from ._core._engine import Outcomes
from ._core._errors import DeadlineExceeded, FanError
from ._core._fan import Fan
from ._core._options import DEFAULT_CONCURRENCY, ErrorPolicy
from ._core._outcome import Outcome
from ._version import __version__

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DeadlineExceeded",
    "ErrorPolicy",
    "Fan",
    "FanError",
    "Outcome",
    "Outcomes",
    "__version__",
    "gather",
    "map",
    "stream",
]

# Present the public classes as anyfan's own in reprs, tracebacks and docs.
for _name in ("DeadlineExceeded", "Fan", "FanError", "Outcome", "Outcomes"):
    globals()[_name].__module__ = __name__
del _name
