"""The transport's httpx side on its own: both forks (httpx2 and httpx), on every backend."""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

import pytest
from run_helpers import SECRET

from anyfan.transport._httpx import HttpxTransport

if TYPE_CHECKING:
    from anyfan.sim import Simulator

HEADERS = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
HTTPX_MODULES = [m for m in ("httpx2", "httpx") if importlib.util.find_spec(m)]


@pytest.mark.anyio
@pytest.mark.parametrize("module_name", HTTPX_MODULES)
async def test_either_httpx_fork_serves(sim: Simulator, module_name: str) -> None:
    transport = HttpxTransport(importlib.import_module(module_name), HEADERS, 2)
    try:
        response = await transport.post(sim.base_url + "/embeddings", b'{"model":"m","input":"x"}')
    finally:
        await transport.aclose()
    assert transport.name == module_name
    assert module_name in repr(transport)
    assert SECRET not in repr(transport)
    assert response.json()["object"] == "list"
