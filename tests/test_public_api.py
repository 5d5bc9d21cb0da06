"""The public surface of `anyfan`: exactly these names, presented as anyfan's own."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import anyfan


def test_all_is_pinned() -> None:
    assert anyfan.__all__ == [
        "DEFAULT_CONCURRENCY",
        "CallOptions",
        "CostTooLarge",
        "DeadlineExceeded",
        "ErrorPolicy",
        "Executor",
        "Fan",
        "FanError",
        "FanOptions",
        "FanStats",
        "GatherOptions",
        "Group",
        "LimitStats",
        "MapOptions",
        "Outcome",
        "Outcomes",
        "PauseEvent",
        "ProgressOptions",
        "Rate",
        "RateTicket",
        "Retry",
        "RetryBudget",
        "RetryEvent",
        "StoreUnavailable",
        "StreamOptions",
        "WrapOptions",
        "__version__",
        "blocking",
        "first",
        "gather",
        "map",
        "stream",
    ]


def test_every_public_name_exists() -> None:
    for name in anyfan.__all__:
        assert getattr(anyfan, name) is not None


def test_public_classes_belong_to_anyfan() -> None:
    for cls in (
        anyfan.DeadlineExceeded,
        anyfan.Fan,
        anyfan.FanError,
        anyfan.Outcome,
        anyfan.Outcomes,
    ):
        assert cls.__module__ == "anyfan"
    assert repr(anyfan.Outcome) == "<class 'anyfan.Outcome'>"


def test_exception_hierarchy() -> None:
    assert issubclass(anyfan.FanError, ExceptionGroup)
    assert issubclass(anyfan.DeadlineExceeded, TimeoutError)


def test_version_is_a_string() -> None:
    assert isinstance(anyfan.__version__, str)
    assert anyfan.__version__


def test_works_without_trio() -> None:
    # trio is an optional extra: importing and running on asyncio must not need it.
    script = textwrap.dedent(
        """
        import sys
        sys.modules["trio"] = None  # makes `import trio` fail
        import anyio, anyfan

        async def double(x):
            return 2 * x

        assert anyio.run(anyfan.map, double, range(3)) == [0, 2, 4]
        assert "trio" not in {m.split(".")[0] for m in sys.modules if sys.modules[m]}
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
