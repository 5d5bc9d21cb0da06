"""A fail-fast run cancels calls that are inside a trio nursery, as httpcore is when connecting.

Under trio such a call ends with its cancellation wrapped in a
`BaseExceptionGroup`; the run must still end in `FanError`, not in that group
(found with the openai SDK: a call cancelled inside ``trio.open_tcp_stream``).
"""

from __future__ import annotations

import anyio
import pytest

import anyfan
from anyfan._core._engine import is_cancellation

pytestmark = pytest.mark.anyio


async def _fails_first_others_wait(i: int) -> int:
    if i == 0:
        await anyio.sleep(0)
        raise ValueError("first")
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.sleep_forever)
        await anyio.sleep_forever()
    return i  # pragma: no cover - cancelled before


async def test_fail_fast_through_nested_task_groups() -> None:
    with pytest.raises(anyfan.FanError) as caught:
        await anyfan.map(_fails_first_others_wait, range(4), concurrency=4)
    assert [type(e) for e in caught.value.exceptions] == [ValueError]


async def test_fail_fast_through_nested_task_groups_with_retries() -> None:
    fan = anyfan.Fan(4, retry=anyfan.Retry(2, retry_on=TimeoutError))
    with pytest.raises(anyfan.FanError) as caught:
        await fan.map(_fails_first_others_wait, range(4))
    assert [type(e) for e in caught.value.exceptions] == [ValueError]
    stats = fan.stats
    assert (stats.failed, stats.cancelled) == (1, stats.started - 1)


async def test_is_cancellation() -> None:
    cancelled = anyio.get_cancelled_exc_class()
    with anyio.CancelScope() as scope:
        scope.cancel()
        try:
            await anyio.sleep(1)
        except cancelled as exc:
            bare = exc
            raise
    assert is_cancellation(bare, cancelled)
    nested = BaseExceptionGroup("g", [bare, BaseExceptionGroup("h", [bare])])
    assert is_cancellation(nested, cancelled)
    assert not is_cancellation(BaseExceptionGroup("g", [bare, KeyboardInterrupt()]), cancelled)
    assert not is_cancellation(ValueError(), cancelled)
