"""Fixtures of the OpenAI adapter's tests."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest
from openai_helpers import HTTPX_FLAVOURS


@pytest.fixture(params=HTTPX_FLAVOURS)
def http(request: pytest.FixtureRequest) -> ModuleType:
    """httpx, then httpx2: every test using it runs once per installed flavour."""
    return importlib.import_module(request.param)
