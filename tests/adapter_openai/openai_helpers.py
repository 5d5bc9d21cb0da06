"""Helpers of the OpenAI adapter's tests: the HTTP libraries present, the SDK's own one."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any

import pytest

#: httpx and its maintained fork: openai 2.x uses the first, openai 3.x the second.
HTTPX_FLAVOURS = [
    pytest.param(name, id=name)
    if importlib.util.find_spec(name)
    else pytest.param(name, id=name, marks=pytest.mark.skip(reason=f"{name} is not installed"))
    for name in ("httpx", "httpx2")
]

#: What the trio backend says about the SDK's SSE generators it leaves unexhausted
#: after ``data: [DONE]`` (openai/_streaming.py breaks out of them).
SSE_GENERATOR_WARNING = r"ignore:Async generator '(openai|httpx2?|httpcore2?)\.:ResourceWarning"


def sdk_http() -> ModuleType:
    """The httpx flavour the installed openai SDK is built on."""
    openai = pytest.importorskip("openai")
    base: Any = openai.DefaultAsyncHttpxClient.__mro__[1]
    return importlib.import_module(base.__module__.partition(".")[0])
