"""``progress=`` and ``on_outcome=``: per-outcome reporting on map and stream."""

from __future__ import annotations

import io
import sys
import types
from typing import Any, ClassVar

import anyio
import pytest

import anyfan
from anyfan._core import _progress as progress_module
from anyfan._core._progress import Lines, ProgressOptions, check_progress, make_observer, total_of


class Terminal(io.StringIO):
    """A text stream that says it is a terminal, as a user's console does."""

    def isatty(self) -> bool:
        return True


class FakeBar:
    instances: ClassVar[list[FakeBar]] = []

    def __init__(self, *, total: int | None, desc: str, **options: Any) -> None:
        self.total = total
        self.desc = desc
        self.options = options
        self.count = 0
        self.postfix: dict[str, int] = {}
        self.closed = False
        FakeBar.instances.append(self)

    def update(self, n: int) -> None:
        self.count += n

    def set_postfix(self, refresh: bool = True, **values: int) -> None:
        self.postfix = values

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_tqdm(monkeypatch: pytest.MonkeyPatch) -> type[FakeBar]:
    FakeBar.instances = []
    package = types.ModuleType("tqdm")
    auto = types.ModuleType("tqdm.auto")
    auto.tqdm = FakeBar  # type: ignore[attr-defined]
    package.auto = auto  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tqdm", package)
    monkeypatch.setitem(sys.modules, "tqdm.auto", auto)
    # As if someone watched a terminal (pytest's captured stderr is not one).
    monkeypatch.setattr(progress_module, "_draws_a_bar", lambda file: True)
    return FakeBar


async def half_fail(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    if x % 2:
        raise ValueError(x)
    return x


def test_total_is_known_only_without_consuming() -> None:
    assert total_of([1, 2, 3]) == 3
    assert total_of(range(10)) == 10
    assert total_of(x for x in range(3)) is None

    async def agen() -> Any:
        yield 1

    assert total_of(agen()) is None

    class Weird:
        def __length_hint__(self) -> int:
            raise TypeError("no")

    assert total_of(Weird()) is None


def test_nothing_asked_costs_nothing() -> None:
    observer, close = make_observer([1], False, None)
    assert observer is None
    close()


def test_bad_options_are_named() -> None:
    with pytest.raises(TypeError, match="on_outcome"):
        make_observer([], False, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="progress"):
        make_observer([], 1, None)  # type: ignore[arg-type]


def test_missing_tqdm_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match=r"anyfan\[progress\]"):
        make_observer([], {"file": Terminal()}, None)


@pytest.mark.anyio
async def test_map_reports_every_outcome_once(fake_tqdm: type[FakeBar]) -> None:
    seen: list[anyfan.Outcome[int, int]] = []
    results = await anyfan.map(
        half_fail, range(100), errors="return", progress="job", on_outcome=seen.append
    )
    assert len(results) == 100
    assert sorted(o.index for o in seen) == list(range(100))
    assert all(o.ok == (o.index % 2 == 0) for o in seen)
    assert all(o.elapsed >= 0 and o.attempts == 1 for o in seen)
    (bar,) = fake_tqdm.instances
    assert (bar.total, bar.desc, bar.count, bar.closed) == (100, "job", 100, True)
    assert bar.postfix == {"failed": 50, "retried": 0}


@pytest.mark.anyio
async def test_stream_bar_counts_and_closes_on_early_exit(fake_tqdm: type[FakeBar]) -> None:
    def endless() -> Any:
        n = 0
        while True:
            yield n
            n += 1

    consumed = 0
    async with anyfan.stream(half_fail, endless(), progress=True, concurrency=4) as outcomes:
        async for _ in outcomes:
            consumed += 1
            if consumed == 11:
                break
    (bar,) = fake_tqdm.instances
    assert bar.total is None
    assert bar.count >= consumed == 11
    assert bar.closed


@pytest.mark.anyio
async def test_retries_show_in_the_bar(fake_tqdm: type[FakeBar]) -> None:
    tries: dict[int, int] = {}

    async def flaky(x: int) -> int:
        tries[x] = tries.get(x, 0) + 1
        if tries[x] == 1:
            raise ConnectionError(x)
        return x

    retry = anyfan.Retry(3, backoff=0.001, max_backoff=0.001, budget=None)
    assert await anyfan.map(flaky, range(5), retry=retry, progress=True) == list(range(5))
    (bar,) = fake_tqdm.instances
    assert bar.postfix == {"failed": 0, "retried": 5}


@pytest.mark.anyio
async def test_a_failing_hook_stops_the_run_and_propagates() -> None:
    calls = 0

    def hook(outcome: anyfan.Outcome[int, int]) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("hook broke")

    with pytest.raises(RuntimeError, match="hook broke"):
        await anyfan.map(half_fail, range(1000), on_outcome=hook, concurrency=2)
    assert calls < 1000


def outcome(index: int, *, ok: bool = True, attempts: int = 1) -> anyfan.Outcome[int, int]:
    return anyfan.Outcome(index, index, error=None if ok else ValueError(index), attempts=attempts)


def test_without_a_terminal_progress_is_a_plain_line_at_most_every_ten_seconds() -> None:
    # Library progress=True used to redraw tqdm ~10 times a second into logs.
    log = io.StringIO()
    now = [0.0]
    lines = Lines(300, {"file": log}, clock=lambda: now[0])
    for i in range(300):
        now[0] += 0.5  # 150 s of calls, two a second
        lines(outcome(i, ok=i % 3 != 0, attempts=2 if i == 5 else 1))
    written = log.getvalue().splitlines()
    assert len(written) == 150 // 10
    lines.close()
    written = log.getvalue().splitlines()
    assert written[0] == "anyfan: 20/300 calls (7%), 7 failed, 1 retried"
    assert written[-1] == "anyfan: 300/300 calls (100%), 100 failed, 1 retried"
    assert len(written) == 16


def test_plain_lines_honour_a_label_and_mininterval_and_unknown_totals() -> None:
    log = io.StringIO()
    now = [0.0]
    lines = Lines(None, {"file": log, "desc": "docs", "mininterval": 1}, clock=lambda: now[0])
    for i in range(4):
        now[0] += 1
        lines(outcome(i))
    assert log.getvalue().splitlines() == [
        f"docs: {n} calls, 0 failed, 0 retried" for n in range(1, 5)
    ]


@pytest.mark.anyio
async def test_map_to_a_log_file_writes_lines_not_a_bar(capsys: pytest.CaptureFixture[str]) -> None:
    results = await anyfan.map(half_fail, range(10), errors="return", progress=True)
    assert len(results) == 10
    # Captured stderr is not a terminal: one final line, no carriage-return redraws.
    err = capsys.readouterr().err
    assert err == "anyfan: 10/10 calls (100%), 5 failed, 0 retried\n"


@pytest.mark.anyio
async def test_tqdm_options_pass_through_progress(fake_tqdm: type[FakeBar]) -> None:
    screen = Terminal()
    options: ProgressOptions = {
        "desc": "chunks", "file": screen, "leave": False, "position": 2, "mininterval": 0.5,
    }  # fmt: skip
    await anyfan.map(half_fail, range(4), errors="return", progress=options)
    async with anyfan.stream(half_fail, range(2), progress=options) as outcomes:
        assert len([o async for o in outcomes]) == 2
    first, second = fake_tqdm.instances
    assert first.desc == "chunks"
    assert first.options["file"] is screen
    assert (first.options["leave"], first.options["position"], first.options["mininterval"]) == (
        False, 2, 0.5,
    )  # fmt: skip
    assert (first.count, second.count) == (4, 2)


@pytest.mark.parametrize(
    ("progress", "error", "match"),
    [
        ({"colour": "red"}, TypeError, "no option 'colour'"),
        ({"leave": 1}, TypeError, "'leave'"),
        ({"position": True}, TypeError, "'position'"),
        ({"file": "out.log"}, TypeError, "writable text file"),
        ({"mininterval": -1}, ValueError, "mininterval"),
        ({"mininterval": float("nan")}, ValueError, "mininterval"),
        (1.5, TypeError, "ProgressOptions"),
    ],
)
def test_bad_progress_options_are_named_when_the_call_is_made(
    progress: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        check_progress(progress)
    with pytest.raises(error, match=match):
        anyfan.Fan().stream(half_fail, [1], progress=progress)


def test_progress_values() -> None:
    assert check_progress(False) is None
    assert check_progress(True) == {}
    assert check_progress("job") == {"desc": "job"}
    assert check_progress({"leave": True, "mininterval": 2}) == {"leave": True, "mininterval": 2}


def test_a_bar_only_where_someone_watches(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = progress_module._draws_a_bar
    assert draws(Terminal())
    assert not draws(io.StringIO())
    closed = io.StringIO()
    closed.close()
    assert not draws(closed)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert not draws(None)
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert draws(None), "Jupyter's widget stands in for the terminal"
    assert not draws(io.StringIO()), "unless the user picked a file"
