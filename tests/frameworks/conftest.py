"""Skip the framework tests where the frameworks, the SDK or the simulator's server are absent."""

from __future__ import annotations

import pytest

for _module in ("openai", "uvicorn", "httptools"):
    pytest.importorskip(_module)
