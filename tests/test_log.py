"""The ``anyfan`` logger: retries and pauses at INFO, give-ups at WARNING, no secrets, silent."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import anyio.lowlevel
import pytest

from anyfan import Fan, Retry
from anyfan._core._log import describe, redact

pytestmark = pytest.mark.anyio

KEY = "sk-proj-abcdefghijklmnop1234567890"


class Busy(ConnectionError):
    pass


async def always_busy(item: str) -> None:
    await anyio.lowlevel.checkpoint()
    raise Busy(f"429 for key {KEY}: Authorization: Bearer {KEY} api_key={KEY}")


async def test_retries_pauses_and_give_ups_are_logged_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    retry = Retry(3, backoff=0.001, max_backoff=0.001, budget=None, delay_hint=lambda e: 0.001)
    fan = Fan(2, retry=retry)
    with caplog.at_level(logging.INFO, logger="anyfan"), pytest.raises(Busy):
        await fan.call(always_busy, "secret prompt")
    records = [r for r in caplog.records if r.name == "anyfan"]
    levels = [r.levelname for r in records]
    assert levels.count("INFO") >= 3  # two retries and at least one pause
    assert levels[-1] == "WARNING"
    assert "giving up after 3 attempts (no attempts left)" in records[-1].getMessage()
    assert any("retrying in" in r.getMessage() for r in records)
    assert any("pausing new calls" in r.getMessage() for r in records)
    text = "\n".join(r.getMessage() for r in records)
    assert KEY not in text
    assert "abcdefghijklmnop" not in text
    assert "secret prompt" not in text
    assert all(r.anyfan_item == "secret prompt" for r in records)  # type: ignore[attr-defined]


async def test_a_failure_that_is_not_retryable_is_not_a_give_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def bad(_: int) -> None:
        raise ValueError("bad request")

    fan = Fan(2, retry=Retry(3))
    with (
        caplog.at_level(logging.INFO, logger="anyfan"),
        pytest.raises(ValueError, match="bad request"),
    ):
        await fan.call(bad, 1)
    assert [r for r in caplog.records if r.name == "anyfan"] == []


async def test_nothing_is_formatted_when_the_levels_are_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    retry = Retry(2, backoff=0.001, max_backoff=0.001, budget=None, delay_hint=lambda e: 0.001)
    with caplog.at_level(logging.ERROR, logger="anyfan"), pytest.raises(Busy):
        await Fan(2, retry=retry).call(always_busy, "x")
    assert [r for r in caplog.records if r.name == "anyfan"] == []


def test_redaction() -> None:
    assert redact(f"key {KEY} leaked") == "key sk-*** leaked"
    assert redact("Authorization: Bearer abc.def-ghi_jkl") == "Authorization: Bearer ***"
    assert redact("url?api_key=XYZ123&x=1") == "url?api_key=***&x=1"
    assert redact("line one\nline two") == "line one"
    assert redact("") == ""
    assert redact("x" * 300).endswith("...")
    assert describe(ValueError()) == "ValueError"
    assert describe(ValueError("no")) == "ValueError: no"


def test_silent_by_default() -> None:
    code = textwrap.dedent(
        """
        import anyio, anyfan
        async def busy(_):
            raise ConnectionError("down")
        async def main():
            fan = anyfan.Fan(retry=anyfan.Retry(2, backoff=0.001, max_backoff=0.001))
            try:
                await fan.call(busy, 1)
            except ConnectionError:
                pass
        anyio.run(main)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stderr == ""
    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("anyfan").handlers)
