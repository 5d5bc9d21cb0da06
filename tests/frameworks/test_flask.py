"""The Flask how-to, served by werkzeug's threaded WSGI server: one quota across threads."""

from __future__ import annotations

from collections import Counter

import pytest
from framework_helpers import KEY, RPM, TPM, how_to, post_all, wsgi_server

from anyfan.sim import Faults, Limits, Simulator

pytest.importorskip("flask")

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("anyio_backend", [pytest.param(("asyncio", {}), id="asyncio")])
async def test_200_concurrent_requests_to_threaded_views_draw_no_429() -> None:
    texts = [f"question {i}" for i in range(200)]
    faults = Faults(server_error=0.03, insufficient_quota=0.03)
    with Simulator(seed=12, limits=Limits(rpm=RPM, tpm=TPM), faults=faults) as sim:
        app = how_to("flask_app").create_app(base_url=sim.base_url, api_key=KEY, rpm=RPM, tpm=TPM)
        try:
            with wsgi_server(app) as url:
                results = await post_all(url, texts)
        finally:
            app.extensions["anyfan"].close()
        counters = sim.wait_until_idle()
    statuses = Counter(status for status, _ in results)
    assert set(statuses) <= {200, 502}
    answered = [body for status, body in results if status == 200]
    assert all(body["answer"] for body in answered)
    failed = [body["detail"] for status, body in results if status == 502]
    assert set(failed) <= {"RateLimitError"}
    assert counters.rate_limited == 0
    assert counters.responses.get(429, 0) == counters.faults.get("quota", 0) == len(failed)
    assert len(answered) + len(failed) == 200
    assert counters.requests == 200 + counters.faults.get("500", 0)
    assert counters.faults.get("500", 0) > 0
    assert len(failed) > 0
