"""A CPU-bound client under matched limits, pinned to one core (run by a test, not a test).

    python saturated_client.py BASE_URL RPM REQUESTS BURN_MS CPU

Pins itself to core ``CPU``, then sends ``REQUESTS`` chat requests through
`anyfan.openai.fan` at ``RPM``; each call then burns ``BURN_MS`` of CPU in the
event loop, as a client parsing its replies would. Prints one JSON line: the
pace reached (calls started per second, from the first start to the last)
and the guard the rate ended with.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import openai

import anyfan.openai as ao


async def main(base_url: str, rpm: float, n: int, burn: float) -> dict[str, Any]:
    starts: list[float] = []
    async with openai.AsyncOpenAI(base_url=base_url, api_key="sk-test") as client:
        fan = ao.fan(client, rpm=rpm, concurrency=64, timeout=30)

        async def ask(request: dict[str, Any]) -> str:
            starts.append(time.monotonic())
            reply = await fan.client.chat.completions.create(**request)
            until = time.process_time() + burn
            while time.process_time() < until:  # the CPU a real client spends on a reply
                pass
            return reply.choices[0].message.content or ""

        request = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Hello"}],
            "max_tokens": 5,
        }
        await fan.map(ask, [request] * n)
        (rate,) = fan.limits
    return {"pace": (n - 1) / (max(starts) - min(starts)), "guard": rate.guard}


if __name__ == "__main__":
    url, rpm, count, burn_ms, cpu = sys.argv[1:6]
    os.sched_setaffinity(0, {int(cpu)})
    result = asyncio.run(main(url, float(rpm), int(count), float(burn_ms) / 1000))
    print(json.dumps(result), flush=True)
