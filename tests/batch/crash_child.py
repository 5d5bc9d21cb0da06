"""Batch job workers that the crash test kills with SIGKILL at chosen points.

Run as ``python crash_child.py INPUT OUTPUT``, it imports anyfan once and then
forks one worker process per ``spawn SEED`` line on stdin, reporting
``exit <status>`` when that worker has ended (killed or done): a fresh process
per run without paying for Python's start-up each time.

A worker answers requests with a fake sender, completing them out of order from a
window of 8, and talks to the parent in lockstep so that each kill lands at a
point the parent chose (never at a time it guessed):

- it prints ``ready <pid> <repaired bytes>`` once the job is open, ``send <line>``
  for each request handed out, and ``rec <line>`` after each result is written;
- after ``ready`` and each ``rec`` it waits for a command on stdin: ``c`` to
  go on, or ``t`` to write the first half of a result line (as a kill during
  the write would leave it), print ``torn`` and wait to be killed.
"""

from __future__ import annotations

import os
import random
import sys

from anyfan.batch import BatchJob, BatchRequest, FsyncPolicy
from anyfan.batch._records import encode_response


def expected_body(req: BatchRequest) -> dict[str, object]:
    return {"echo": req.custom_id, "line": req.line, "n": req.body.get("n")}


def command() -> str:
    return sys.stdin.readline().strip()


def tear(output: str, req: BatchRequest) -> None:
    data, _ = encode_response(req.line, req.custom_id, 200, expected_body(req), 1, 0.0)
    fd = os.open(output, os.O_WRONLY | os.O_APPEND)
    os.write(fd, data[: len(data) // 2])
    os.close(fd)
    print("torn", flush=True)
    command()  # wait for the kill


def work(source: str, output: str, seed: int) -> None:
    rng = random.Random(seed)
    job = BatchJob.open(source, output, {"fake": True}, fsync=FsyncPolicy(every_seconds=None))
    print(f"ready {os.getpid()} {job.repaired_bytes}", flush=True)
    if command() == "t":
        raise AssertionError("nothing to tear yet")
    window: list[BatchRequest] = []

    def finish_one() -> None:
        req = window.pop(rng.randrange(len(window)))
        if req.line % 13 == 0:
            job.record_error(req, {"code": "fake_failure", "line": req.line}, attempts=3)
        else:
            job.record(req, 200, expected_body(req), attempts=1 + req.line % 2, latency=0.001)
        print(f"rec {req.line}", flush=True)
        if command() == "t":
            tear(output, window[0] if window else req)

    for req in job.pending():
        print(f"send {req.line}", flush=True)
        window.append(req)
        if len(window) == 8:
            finish_one()
    while window:
        finish_one()
    job.close()
    print("finished", flush=True)


def main() -> int:
    source, output = sys.argv[1], sys.argv[2]
    while line := command():
        seed = int(line.removeprefix("spawn "))
        pid = os.fork()
        if pid == 0:  # the worker
            try:
                work(source, output, seed)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        print(f"exit {status}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
