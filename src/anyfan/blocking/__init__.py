"""anyfan from plain synchronous code: scripts, threads, web views and notebooks.

The same engine as the async API, run on an event loop in a background thread.
Names and keyword options mirror `anyfan`: ``blocking.map`` is ``anyfan.map``
without the ``await``. See [the explanation](../explanation/blocking.md).
"""

from ._api import gather, map, stream
from ._executor import Executor
from ._fan import Fan
from ._loop import Backend, Loop, default_loop
from ._stream import Outcomes

__all__ = [
    "Backend",
    "Executor",
    "Fan",
    "Loop",
    "Outcomes",
    "default_loop",
    "gather",
    "map",
    "stream",
]

# Present the public classes as this package's own in reprs, tracebacks and docs.
for _name in ("Executor", "Fan", "Loop", "Outcomes"):
    globals()[_name].__module__ = __name__
del _name
