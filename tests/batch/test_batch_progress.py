from __future__ import annotations

import io

import pytest

from anyfan.batch import Counters, LineProgress, TextBar, TqdmBar, make_progress
from anyfan.batch._progress import status_text


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_text_with_total() -> None:
    c = Counters(already_ok=100, ok=150, failed=2, malformed=1, retries=7, rate_limited=3, blank=1)
    text = status_text(c, total=1000, elapsed=2.0)
    # 154 lines this run in 2 s: 77/s; 746 left: about 10 s.
    assert text == "254/1,000 (25.4%), 77 lines/s, ETA 0:10, 7 retries, 3 x 429, 3 errors"


def test_status_text_unknown_total_and_no_time() -> None:
    assert status_text(Counters(), None, 0.0) == "0 done, 0 lines/s, 0 retries, 0 x 429, 0 errors"
    assert "ETA ?" in status_text(Counters(), 10, 0.0)
    assert "(100.0%)" in status_text(Counters(), 0, 1.0)


def test_line_progress_is_throttled() -> None:
    clock, out = FakeClock(), io.StringIO()
    progress = LineProgress(10, out, interval=10.0, clock=clock)
    c = Counters(ok=1)
    progress.update(c)
    assert out.getvalue() == ""
    clock.now += 10.0
    progress.update(c)
    assert (
        out.getvalue()
        == "anyfan: 1/10 (10.0%), 0 lines/s, ETA 1:30, 0 retries, 0 x 429, 0 errors\n"
    )
    clock.now += 5.0
    c.ok = 5
    progress.update(c)
    assert out.getvalue().count("\n") == 1
    progress.close(c)
    assert out.getvalue().splitlines()[-1].startswith("anyfan: 5/10 (50.0%)")


def test_interval_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="interval"):
        LineProgress(None, io.StringIO(), interval=-1)


def test_text_bar_redraws_in_place() -> None:
    clock, out = FakeClock(), io.StringIO()
    bar = TextBar(None, out, interval=0.2, clock=clock)
    c = Counters(ok=123_456, retries=10)
    clock.now += 1
    bar.update(c)
    first = out.getvalue()
    assert first.startswith("\r123,456 done")
    c.ok, c.retries = 5, 0  # a shorter line must wipe the longer one
    clock.now += 1
    bar.update(c)
    second = out.getvalue()[len(first) :]
    assert second.startswith("\r5 done")
    assert len(second) == len(first)
    bar.close(c)
    assert out.getvalue().endswith("\n")


def test_tqdm_bar() -> None:
    pytest.importorskip("tqdm")
    clock, out = FakeClock(), io.StringIO()
    bar = TqdmBar(100, out, initial=40, interval=0.2, clock=clock)
    c = Counters(already_ok=40, ok=10, rate_limited=2, failed=1)
    clock.now += 1
    bar.update(c)
    c.ok = 20
    bar.close(c)
    text = out.getvalue()
    assert "61/100" in text
    assert "429s=2" in text
    assert "errors=1" in text


def test_make_progress_choices() -> None:
    assert make_progress("off", 10) is None
    assert isinstance(make_progress("auto", 10, stream=io.StringIO()), LineProgress)
    assert isinstance(make_progress("lines", 10, stream=Tty()), LineProgress)
    assert isinstance(make_progress("auto", 10, stream=Tty(), use_tqdm=False), TextBar)
    assert isinstance(make_progress("bar", 10, stream=io.StringIO(), use_tqdm=False), TextBar)
    pytest.importorskip("tqdm")
    bar = make_progress("bar", 10, stream=Tty())
    assert isinstance(bar, TqdmBar)
    bar.close(Counters())
    with pytest.raises(ValueError, match="progress must be"):
        make_progress("fancy", 10)  # type: ignore[arg-type]


def test_default_stream_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    progress = make_progress("lines", None)
    assert progress is not None
    progress.close(Counters(ok=1))
    err = capsys.readouterr().err
    assert err.startswith("anyfan: 1 done, ")
    assert err.endswith(" lines/s, 0 retries, 0 x 429, 0 errors\n")
