"""An OpenAI-compatible simulated server for tests, demos and benchmarks.

`Simulator` serves real HTTP on 127.0.0.1 from its own thread: chat
completions (plain and streamed), completions, embeddings and models, with
deterministic fake content, the provider's rate limits, a latency model and
seeded faults. ``anyfan sim`` runs the same server as a process, and the
``anyfan_sim`` pytest fixture hands one to each test.

Importing this package needs nothing beyond anyfan; starting a server needs
the ``sim`` extra (uvicorn with httptools, and uvloop where available).
"""

from ._config import Fault, Faults, Latency, ServerLimits
from ._counters import Counters
from ._server import Simulator

__all__ = ["Counters", "Fault", "Faults", "Latency", "ServerLimits", "Simulator"]

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name

#: The former name of `ServerLimits`, kept so that code written for it still runs.
Limits = ServerLimits
