"""One worker process of the shared-quota tests: N posts to the simulator under a Rate in Redis.

    python quota_worker.py REDIS_URL BASE_URL KEY RPM N BACKEND

Prints one JSON line: how many posts got each status.
"""

from __future__ import annotations

import json
import sys

import anyio

import anyfan
import anyfan.redis
from anyfan.transport import open_transport

BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
).encode()


async def main(redis_url: str, base_url: str, key: str, rpm: float, n: int) -> dict[str, int]:
    store = anyfan.redis.RedisStore(redis_url)
    rate = anyfan.Rate(rpm, per=60, store=store, key=key)
    codes: dict[str, int] = {}
    headers = {"Authorization": "Bearer sk-shared", "Content-Type": "application/json"}
    async with open_transport(headers, 8) as http:

        async def post(i: int) -> None:
            response = await http.post(base_url + "/chat/completions", BODY)
            codes[str(response.status)] = codes.get(str(response.status), 0) + 1

        await anyfan.map(post, range(n), limits=[rate], concurrency=8)
    await store.aclose()
    return codes


if __name__ == "__main__":
    url, base, key, rpm, n, backend = sys.argv[1:7]
    print(json.dumps(anyio.run(main, url, base, key, float(rpm), int(n), backend=backend)))
