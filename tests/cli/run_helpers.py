"""Helpers of the ``anyfan run`` tests: request files, results, what the simulator serves."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from anyfan.sim import Simulator

#: A key no one would type by chance: tests grep every output for it.
SECRET = "sk-test-DO-NOT-LEAK-8c1f2e7a9b"


def chat(n: int, **extra: Any) -> dict[str, Any]:
    """A small chat request body, distinct for each ``n``."""
    return {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"Question number {n}?"}],
        "max_tokens": 20,
        **extra,
    }


def batch_line(custom_id: str, body: dict[str, Any], url: str = "/v1/chat/completions") -> str:
    """One request in the OpenAI Batch API shape."""
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


def write_requests(path: Path, lines: list[str]) -> Path:
    """Write ``lines`` as a JSONL file."""
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def plain_requests(path: Path, count: int) -> Path:
    """``count`` requests, alternately Batch-shaped and bare bodies."""
    lines = [batch_line(f"q{n}", chat(n)) if n % 2 else json.dumps(chat(n)) for n in range(count)]
    return write_requests(path, lines)


def read_results(path: Path) -> list[dict[str, Any]]:
    """The result lines, decoded (every line must be whole JSON)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@dataclass
class Ran:
    """What one in-process ``anyfan run`` did."""

    code: int
    out: str
    err: str


def served(sim: Simulator, body: dict[str, Any], url: str = "/v1/chat/completions") -> Any:
    """The body the simulator serves for ``body`` when nothing goes wrong (its content is fixed).

    Sent with a key of its own (limits are per key) and with faults turned off
    for this one request.
    """
    import urllib.request

    request = urllib.request.Request(
        sim.url + url,
        data=json.dumps(body).encode(),
        headers={
            "Authorization": "Bearer sk-reference",
            "Content-Type": "application/json",
            "x-sim-fault": "none",
            "x-sim-latency-ms": "0",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())
