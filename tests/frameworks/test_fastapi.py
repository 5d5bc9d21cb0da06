"""The FastAPI how-to, served by a real uvicorn: 200 concurrent requests, one shared quota."""

from __future__ import annotations

from collections import Counter

import pytest
from framework_helpers import KEY, RPM, TPM, how_to, post_all, uvicorn_server

from anyfan.sim import Faults, Limits, Simulator

pytest.importorskip("fastapi")

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("anyio_backend", [pytest.param(("asyncio", {}), id="asyncio")])
async def test_200_concurrent_requests_draw_no_429_and_each_gets_its_answer_or_error() -> None:
    texts = [f"question {i}" for i in range(200)]
    # 3% of calls meet a 500 (healed by anyfan's retries) and 3% the insufficient_quota
    # 429, which is final: the handler then answers 502 with the SDK's exception.
    faults = Faults(server_error=0.03, insufficient_quota=0.03)
    with Simulator(seed=11, limits=Limits(rpm=RPM, tpm=TPM), faults=faults) as sim:
        app = how_to("fastapi_app").create_app(base_url=sim.base_url, api_key=KEY, rpm=RPM, tpm=TPM)
        with uvicorn_server(app) as url:
            results = await post_all(url, texts)
        counters = sim.wait_until_idle()
    statuses = Counter(status for status, _ in results)
    assert set(statuses) <= {200, 502}
    answered = [body for status, body in results if status == 200]
    assert all(body["answer"] for body in answered)
    failed = [body["detail"] for status, body in results if status == 502]
    assert set(failed) <= {"RateLimitError"}
    # The simulator's own limit never tripped: every 429 it sent was a quota fault.
    assert counters.rate_limited == 0
    assert counters.responses.get(429, 0) == counters.faults.get("quota", 0) == len(failed)
    assert len(answered) + len(failed) == 200
    assert len(answered) == counters.responses.get(200, 0)
    # Each 500 was retried, so it cost one request more than the answers needed.
    assert counters.requests == 200 + counters.faults.get("500", 0)
    assert counters.faults.get("500", 0) > 0
    assert len(failed) > 0
