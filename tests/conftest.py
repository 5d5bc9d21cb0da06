"""Shared pytest configuration: every async test runs on each supported backend."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

_HAS_TRIO = importlib.util.find_spec("trio") is not None
_HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None

BACKENDS: list[Any] = [pytest.param(("asyncio", {}), id="asyncio")]
if _HAS_UVLOOP:
    BACKENDS.append(pytest.param(("asyncio", {"use_uvloop": True}), id="asyncio+uvloop"))
if _HAS_TRIO:
    BACKENDS.append(pytest.param(("trio", {}), id="trio"))


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """asyncio, asyncio+uvloop and trio, each where installed (the minimal session has no trio)."""
    return request.param


@pytest.fixture
def backend_name(anyio_backend: Any) -> str:
    """The backend's name as anyio spells it: ``"asyncio"`` or ``"trio"``."""
    return str(anyio_backend[0])
