"""Option checking: mistakes surface where objects are built, with clear messages (no loop)."""

from __future__ import annotations

import math

import pytest

import anyfan
from anyfan import DEFAULT_CONCURRENCY, Fan
from anyfan._core._options import ERROR_POLICIES, check_concurrency, check_errors, check_seconds
from strategies import Job, Probe


def test_default_concurrency_is_finite() -> None:
    assert isinstance(DEFAULT_CONCURRENCY, int)
    assert 1 <= DEFAULT_CONCURRENCY <= 1000
    assert Fan().concurrency == DEFAULT_CONCURRENCY


@pytest.mark.parametrize("value", [1, 7, 10_000])
def test_concurrency_accepts_positive_ints(value: int) -> None:
    assert check_concurrency(value) == value


@pytest.mark.parametrize("value", [True, False, 1.0, 2.5, "3", None, [1]])
def test_concurrency_rejects_non_ints(value: object) -> None:
    with pytest.raises(TypeError, match=r"^concurrency must be an int, got "):
        check_concurrency(value)


@pytest.mark.parametrize("value", [0, -1, -100])
def test_concurrency_rejects_non_positive(value: int) -> None:
    with pytest.raises(ValueError, match=rf"^concurrency must be at least 1, got {value}$"):
        check_concurrency(value)


def test_concurrency_message_uses_the_given_name() -> None:
    with pytest.raises(ValueError, match=r"^threads must be at least 1"):
        check_concurrency(0, name="threads")


@pytest.mark.parametrize(("value", "expected"), [(None, None), (1, 1.0), (0.25, 0.25), (1e9, 1e9)])
def test_seconds_accepts_none_and_positive_numbers(value: object, expected: float | None) -> None:
    result = check_seconds(value, name="timeout")
    assert result == expected
    assert result is None or type(result) is float


@pytest.mark.parametrize("value", [True, "1", b"1", [1]])
def test_seconds_rejects_non_numbers(value: object) -> None:
    with pytest.raises(TypeError, match=r"^deadline must be a number or None, got "):
        check_seconds(value, name="deadline")


@pytest.mark.parametrize("value", [0, 0.0, -1, -0.5, math.inf, -math.inf, math.nan])
def test_seconds_rejects_non_positive_or_non_finite(value: float) -> None:
    with pytest.raises(ValueError, match=r"^timeout must be a positive, finite number"):
        check_seconds(value, name="timeout")


@pytest.mark.parametrize("value", ERROR_POLICIES)
def test_errors_accepts_each_policy(value: str) -> None:
    assert check_errors(value) == value


@pytest.mark.parametrize("value", ["ignore", "RAISE", "", None, 1])
def test_errors_rejects_anything_else(value: object) -> None:
    expected = f"errors must be one of 'raise', 'collect', 'return', got {value!r}"
    with pytest.raises(ValueError, match=r"^errors must be one of") as info:
        check_errors(value)
    assert str(info.value) == expected


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"concurrency": 0}, ValueError, "concurrency must be at least 1"),
        ({"concurrency": 2.0}, TypeError, "concurrency must be an int"),
        ({"concurrency": True}, TypeError, "concurrency must be an int"),
        ({"timeout": 0}, ValueError, "timeout must be a positive, finite number"),
        ({"timeout": math.nan}, ValueError, "timeout must be a positive, finite number"),
        ({"timeout": "5"}, TypeError, "timeout must be a number or None"),
        ({"errors": "ignore"}, ValueError, "errors must be one of"),
    ],
)
def test_fan_rejects_bad_options_at_construction(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Fan(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"concurrency": 0}, ValueError, "concurrency must be at least 1"),
        ({"timeout": -1}, ValueError, "timeout must be a positive"),
        ({"deadline": 0}, ValueError, "deadline must be a positive"),
        ({"deadline": "soon"}, TypeError, "deadline must be a number or None"),
    ],
)
def test_stream_rejects_bad_options_when_called(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    # stream() is a plain function: bad options fail before any event loop or call is involved.
    probe = Probe()
    with pytest.raises(error, match=message):
        anyfan.stream(probe, [Job(0)], **kwargs)  # type: ignore[call-overload]
    with pytest.raises(error, match=message):
        Fan().stream(probe, [Job(0)], **kwargs)  # type: ignore[call-overload]
    assert probe.started == []
