"""Forks ``anyfan run`` processes for the crash test, so each run skips Python's start-up.

Run as ``python run_forker.py LOG -- ARGS...``: it imports anyfan and the HTTP
clients once, then for each line on stdin forks a child that runs
``anyfan run ARGS`` with its output appended to LOG, prints ``pid <pid>``, and
prints ``exit <status>`` once the child has ended, killed or not.

Backoff between retries is cut to milliseconds, as in the in-process tests.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys

from anyfan import cli
from anyfan.batch import _send as _sender
from anyfan.cli import _run
from anyfan.openai import openai_retry

# Imported before forking, so that no child pays for it.
for _module in ("aiohttp", "uvloop", "anyfan.transport._aiohttp", "anyfan.transport._httpx"):
    if importlib.util.find_spec(_module.split(".")[0]):
        __import__(_module)
assert _run.main is not None
_sender.openai_retry = functools.partial(openai_retry, backoff=0.002, max_backoff=0.01)  # type: ignore[assignment]


def child(log: str, args: list[str]) -> int:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    return cli.main(["run", *args])


def main() -> int:
    log = sys.argv[1]
    args = sys.argv[sys.argv.index("--") + 1 :]
    while sys.stdin.readline():
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                code = child(log, args)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {status}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
