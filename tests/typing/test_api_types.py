"""Pin the types that anyfan's public API infers, with `typing.assert_type`.

``nox -s typecheck`` runs mypy --strict on this file: an `assert_type` that no
longer holds, or a ``type: ignore`` that is no longer needed (a misuse the API
stopped rejecting), fails the session. pytest runs it too, so every call here
really works on every backend.
"""

from __future__ import annotations

import pydoc
from typing import TYPE_CHECKING, Any, Unpack, assert_type

import pytest

import anyfan

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.anyio


async def double(x: int) -> int:
    return 2 * x


def shout(text: str) -> str:
    return text.upper()


async def numbers(count: int) -> AsyncIterator[int]:
    for i in range(count):
        yield i


async def test_map_returns_a_list_of_the_callable_s_result() -> None:
    values = await anyfan.map(double, [1, 2, 3])
    assert_type(values, list[int])
    assert values == [2, 4, 6]

    collected = await anyfan.map(double, range(3), concurrency=2, errors="collect")
    assert_type(collected, list[int])
    assert collected == [0, 2, 4]

    from_async_input = await anyfan.map(double, numbers(3), timeout=5, deadline=60)
    assert_type(from_async_input, list[int])
    assert from_async_input == [0, 2, 4]

    from_threads = await anyfan.map(shout, ["a", "b"])
    assert_type(from_threads, list[str])
    assert from_threads == ["A", "B"]


async def test_errors_return_puts_exceptions_in_the_list() -> None:
    mixed = await anyfan.map(double, [1], errors="return")
    assert_type(mixed, list[int | Exception])
    assert mixed == [2]

    mixed_from_threads = await anyfan.map(shout, ["a"], errors="return")
    assert_type(mixed_from_threads, list[str | Exception])
    assert mixed_from_threads == ["A"]

    policy: anyfan.ErrorPolicy = "return"
    either = await anyfan.map(double, [1], errors=policy)
    assert_type(either, list[int] | list[int | Exception])
    assert either == [2]


async def test_gather_returns_a_list() -> None:
    results = await anyfan.gather(double(1), double(2), concurrency=1, errors="collect")
    assert_type(results, list[int])
    assert results == [2, 4]

    mixed = await anyfan.gather(double(1), errors="return")
    assert_type(mixed, list[int | Exception])
    assert mixed == [2]


async def test_stream_yields_typed_outcomes() -> None:
    seen: list[anyfan.Outcome[int, int]] = []
    async with anyfan.stream(double, [1, 2], ordered=True, concurrency=2) as outcomes:
        assert_type(outcomes, anyfan.Outcomes[int, int])
        async for outcome in outcomes:
            assert_type(outcome, anyfan.Outcome[int, int])
            assert_type(outcome.index, int)
            assert_type(outcome.item, int)
            assert_type(outcome.value, int | None)
            assert_type(outcome.error, Exception | None)
            assert_type(outcome.ok, bool)
            assert_type(outcome.unwrap(), int)
            assert_type(outcome.attempts, int)
            assert_type(outcome.elapsed, float)
            seen.append(outcome)
    assert [o.unwrap() for o in seen] == [2, 4]

    async with anyfan.stream(shout, ["x"]) as from_threads:
        assert_type(from_threads, anyfan.Outcomes[str, str])
        assert [o.value async for o in from_threads] == ["X"]


async def test_fan_methods_match_the_module_functions() -> None:
    fan = anyfan.Fan(4, timeout=5, errors="collect")
    assert_type(fan.concurrency, int)
    assert_type(fan.in_flight, int)

    values = await fan.map(double, [1], concurrency=2, timeout=None, deadline=10)
    assert_type(values, list[int])
    mixed = await fan.map(shout, ["a"], errors="return")
    assert_type(mixed, list[str | Exception])
    gathered = await fan.gather(double(3))
    assert_type(gathered, list[int])
    async with fan.stream(double, [5], ordered=False) as outcomes:
        assert_type(outcomes, anyfan.Outcomes[int, int])
        assert [o.value async for o in outcomes] == [10]
    assert (values, mixed, gathered) == ([2], ["A"], [6])


def test_error_types() -> None:
    error = anyfan.FanError("1 of 2 calls failed", [ValueError("bad")], indices=[1])
    assert_type(error.indices, tuple[int, ...])
    assert_type(error.results, list[Any] | None)
    assert_type(error.failures, list[tuple[int, Exception]])
    assert_type(error.successes(), dict[int, Any])
    assert isinstance(error, ExceptionGroup)
    assert error.failures[0][0] == 1

    late = anyfan.DeadlineExceeded(1.5, {0: "done"})
    assert_type(late.completed, dict[int, Any])
    assert isinstance(late, TimeoutError)
    assert late.completed == {0: "done"}


def test_blocking_functions_are_typed_like_the_async_ones() -> None:
    values = anyfan.blocking.map(double, [1, 2], concurrency=2, timeout=5)
    assert_type(values, list[int])
    mixed = anyfan.blocking.map(shout, ["a"], errors="return", backend="asyncio")
    assert_type(mixed, list[str | Exception])
    gathered = anyfan.blocking.gather(double(1), double(2), concurrency=1)
    assert_type(gathered, list[int])
    outcomes = anyfan.blocking.stream(double, [3], ordered=True)
    assert_type(outcomes, anyfan.blocking.Outcomes[int, int])
    assert [o.value for o in outcomes] == [6]
    with anyfan.blocking.Fan(2, timeout=5, errors="collect") as fan:
        assert_type(fan.map(double, [4], deadline=10), list[int])
        assert_type(fan.gather(double(5)), list[int])
    assert (values, mixed, gathered) == ([2, 4], ["A"], [2, 4])


async def test_options_can_be_forwarded_by_a_wrapper() -> None:
    async def doubled(items: list[int], **options: Unpack[anyfan.MapOptions]) -> list[int]:
        return await anyfan.map(double, items, **options)

    assert await doubled([1, 2], concurrency=1, deadline=30) == [2, 4]


def test_help_shows_every_option_and_no_private_names() -> None:
    for function in (anyfan.map, anyfan.stream, anyfan.gather, anyfan.Fan.map, anyfan.Fan.stream):
        text = pydoc.render_doc(function)
        assert "_Unset" not in text
    one_shot = pydoc.render_doc(anyfan.map)
    for option in ("concurrency", "timeout", "deadline", "limits", "retry", "progress"):
        assert f"{option}:" in one_shot  # documented in Args, not only in the signature
    assert "on_outcome:" in one_shot
    assert "errors:" in one_shot
    assert "ordered:" in pydoc.render_doc(anyfan.stream)


async def _misuses_the_type_checker_rejects() -> None:
    # Never called: each line must stay a type error (mypy flags unused ignores).
    await anyfan.map(double, ["not an int"])  # type: ignore[arg-type]
    await anyfan.map(double, [1], errors="ignore")  # type: ignore[call-overload]
    anyfan.Fan(errors="sometimes")  # type: ignore[arg-type]
    anyfan.stream(double, [1], ordered="yes")  # type: ignore[call-overload]
    await anyfan.map(double, [1], concurency=3)  # type: ignore[call-overload]
    await anyfan.Fan().map(double, [1], concurency=3)  # type: ignore[call-overload]
    anyfan.blocking.map(double, [1], concurency=3)  # type: ignore[call-overload]
    anyfan.blocking.stream(double, [1], oredered=True)  # type: ignore[call-overload]
    anyfan.blocking.Fan(2, timout=5)  # type: ignore[call-arg]
    anyfan.blocking.Fan().map(double, [1], concurency=3)  # type: ignore[call-overload]
    anyfan.blocking.gather(double(1), concurency=3)  # type: ignore[call-overload]
    await anyfan.Fan().call(double, "x")  # type: ignore[arg-type]
    await anyfan.Fan().call(double, 1, timout=3)  # type: ignore[call-overload]
    anyfan.Fan().wrap(double, retri=None)  # type: ignore[call-overload]


async def test_single_calls_return_the_callable_s_result() -> None:
    fan = anyfan.Fan(4)
    value = await fan.call(double, 2)
    assert_type(value, int)
    assert value == 4

    from_thread = await fan.call(shout, "a")
    assert_type(from_thread, str)
    assert from_thread == "A"

    wrapped = fan.wrap(double)
    assert_type(await wrapped(3), int)

    winner = await anyfan.first(double, [1, 2])
    assert_type(winner, int)

    ticket = await anyfan.Rate(1000).acquire(cost=2)
    assert_type(ticket, anyfan.RateTicket)

    with anyfan.blocking.Fan(2) as blocking_fan:
        assert_type(blocking_fan.call(double, 1), int)
        assert_type(blocking_fan.wrap(shout)("b"), str)
