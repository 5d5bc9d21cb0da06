"""`Retry`: validation, the pure decision, and a retry loop on every backend on virtual time."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from anyfan._core._budget import RetryBudget
from anyfan._core._rate import Limits, Rate
from anyfan._core._retry import DEFAULT_RETRY_ON, Decision, Pause, Retry
from strategies import CLOCKED_BACKEND_IDS, clocked_backend, unit_draws
from virtual_time import Virtual, virtual_time


@pytest.fixture(params=CLOCKED_BACKEND_IDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return clocked_backend(request.param)


class RateLimited(Exception):
    """A 429 that says how long to wait."""

    def __init__(self, retry_after: float | None) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


def retry_after(exc: Exception) -> float | None:
    return getattr(exc, "retry_after", None)


# -- construction -------------------------------------------------------------------


def test_defaults_and_repr() -> None:
    retry = Retry()
    assert retry.attempts == 3
    assert retry.retry_on == DEFAULT_RETRY_ON
    assert isinstance(retry.budget, RetryBudget)
    assert retry.budget.ratio == 0.2
    assert retry.backoff.base == 0.5
    assert retry.max_hint == 120.0
    assert repr(retry).startswith("Retry(attempts=3, backoff=0.5, max_backoff=30, jitter=1,")
    assert "retry_on=(TimeoutError, ConnectionError)" in repr(retry)
    assert "delay_hint=None" in repr(retry)


def test_repr_names_the_classification_and_the_hint() -> None:
    def server_delay(error: Exception) -> float | None:
        return None

    retry = Retry(retry_on=KeyError, delay_hint=server_delay)
    text = repr(retry)
    assert "retry_on=(KeyError,)" in text
    assert (
        "delay_hint=test_repr_names_the_classification_and_the_hint.<locals>.server_delay" in text
    )


def test_budget_forms() -> None:
    assert Retry(budget=None).budget is None
    budget = RetryBudget(0.5)
    assert Retry(budget=budget).budget is budget
    assert Retry(budget=0.1).budget.ratio == 0.1  # type: ignore[union-attr]


def test_jitter_accepts_booleans() -> None:
    assert Retry(jitter=False).backoff.jitter == 0.0
    assert Retry(jitter=True).backoff.jitter == 1.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"attempts": 0}, ValueError, "attempts must be at least 1"),
        ({"attempts": 2.0}, TypeError, "attempts must be an int"),
        ({"attempts": True}, TypeError, "attempts must be an int"),
        ({"backoff": 0}, ValueError, "backoff must be a positive, finite number"),
        ({"backoff": "1"}, TypeError, "backoff must be a number"),
        ({"max_backoff": math.inf}, ValueError, "max_backoff must be a positive, finite number"),
        ({"backoff": 2, "max_backoff": 1}, ValueError, "must be at least backoff"),
        ({"jitter": 1.5}, ValueError, "jitter must be a number from 0 to 1"),
        ({"deadline": -1}, ValueError, "deadline must be a positive, finite number"),
        ({"retry_on": KeyboardInterrupt}, ValueError, "cannot include KeyboardInterrupt"),
        ({"retry_on": (OSError, SystemExit)}, ValueError, "cannot include SystemExit"),
        ({"retry_on": "OSError"}, TypeError, "retry_on must be"),
        ({"delay_hint": 5}, TypeError, "delay_hint must be a function"),
        ({"max_hint": 0}, ValueError, "max_hint must be a positive, finite number"),
        ({"budget": "lots"}, TypeError, "budget must be"),
        ({"budget": -1}, ValueError, "ratio"),
        ({"ramp": -1}, ValueError, "ramp must be a non-negative, finite number"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        Retry(**kwargs)


# -- deciding ---------------------------------------------------------------------


def decide(retry: Retry, error: BaseException, attempt: int = 1, elapsed: float = 0.0) -> Decision:
    return retry.decide(error, attempt=attempt, elapsed=elapsed, now=0.0, rand=lambda: 0.0)


@pytest.mark.parametrize(
    "error",
    [KeyboardInterrupt(), SystemExit(), GeneratorExit(), BaseException()],
)
def test_never_retries_what_is_not_an_exception(error: BaseException) -> None:
    retry = Retry(retry_on=lambda exc: True, budget=None)
    assert decide(retry, error) == Decision(None, None, "not retryable")
    assert not retry.accepts(error)


@pytest.mark.anyio
async def test_never_retries_cancellation() -> None:
    retry = Retry(retry_on=lambda exc: True, budget=None)
    caught: list[BaseException] = []
    with anyio.CancelScope() as scope:
        scope.cancel()
        try:
            await anyio.sleep(1)
        except anyio.get_cancelled_exc_class() as exc:
            caught.append(exc)
            raise
    assert len(caught) == 1
    assert decide(retry, caught[0]) == Decision(None, None, "not retryable")


def test_retry_on_types_and_predicates() -> None:
    by_type = Retry(retry_on=ValueError, budget=None)
    assert decide(by_type, ValueError()).retry
    assert decide(by_type, TypeError()).reason == "not retryable"
    by_predicate = Retry(retry_on=lambda exc: "again" in str(exc), budget=None)
    assert decide(by_predicate, RuntimeError("try again")).retry
    assert not decide(by_predicate, RuntimeError("fatal")).retry
    nothing = Retry(retry_on=(), budget=None)
    assert not decide(nothing, TimeoutError()).retry


def test_backoff_grows_and_attempts_run_out() -> None:
    retry = Retry(attempts=4, backoff=1, max_backoff=3, jitter=0, budget=None)
    delays = [decide(retry, TimeoutError(), attempt=n).delay for n in (1, 2, 3, 4)]
    assert delays == [1.0, 2.0, 3.0, None]
    assert decide(retry, TimeoutError(), attempt=4).reason == "attempts"


def test_a_server_directed_delay_wins_and_pauses_the_fan() -> None:
    retry = Retry(retry_on=RateLimited, delay_hint=retry_after, max_hint=60, budget=None)
    decision = decide(retry, RateLimited(7.5))
    assert (decision.delay, decision.pause, decision.reason) == (7.5, 7.5, "retry")
    capped = decide(retry, RateLimited(600))
    assert (capped.delay, capped.pause) == (60.0, 60.0)
    without = decide(retry, RateLimited(None))
    assert without.pause is None
    assert without.delay == 0.5
    zero = decide(retry, RateLimited(0))
    assert (zero.delay, zero.pause) == (0.0, None)


def test_a_hint_that_is_not_a_number_is_ignored() -> None:
    retry = Retry(retry_on=Exception, delay_hint=lambda exc: "soon", budget=None)  # type: ignore[arg-type,return-value]
    assert retry.hint(ValueError()) is None
    assert Retry().hint(ValueError()) is None


def test_giving_up_still_reports_the_pause() -> None:
    retry = Retry(attempts=1, retry_on=RateLimited, delay_hint=retry_after, budget=None)
    assert decide(retry, RateLimited(5)) == Decision(None, 5.0, "attempts")


def test_deadline_stops_retries_that_would_start_too_late() -> None:
    retry = Retry(attempts=10, backoff=2, jitter=0, deadline=5, budget=None)
    assert decide(retry, TimeoutError(), attempt=1, elapsed=2.9).delay == 2.0
    assert decide(retry, TimeoutError(), attempt=1, elapsed=3.0).reason == "deadline"


def test_the_budget_is_spent_only_on_retries() -> None:
    retry = Retry(attempts=10, budget=RetryBudget(0, minimum=2))
    assert decide(retry, ValueError()).reason == "not retryable"
    assert [decide(retry, TimeoutError()).reason for _ in range(3)] == [
        "retry",
        "retry",
        "budget",
    ]
    retry.record_call(0.0)
    Retry(budget=None).record_call(0.0)  # nothing to record, nothing breaks


@given(draw=unit_draws, attempt=st.integers(1, 50))
def test_delays_stay_within_the_backoff_ceiling(draw: float, attempt: int) -> None:
    retry = Retry(attempts=100, backoff=0.5, max_backoff=8, budget=None)
    decision = retry.decide(TimeoutError(), attempt=attempt, elapsed=0, now=0, rand=lambda: draw)
    assert decision.delay is not None
    assert 0 < decision.delay <= min(8, 0.5 * 2 ** (attempt - 1))


# -- a retry loop on virtual time ---------------------------------------------------


async def call_with_retries(
    fn: Any, item: Any, retry: Retry, limits: Limits, clock: Virtual, pause: Pause | None = None
) -> tuple[list[float], Any]:
    """The loop the engine runs per item; returns the attempts' start times and the outcome."""
    first = clock.now()
    retry.record_call(first)
    starts: list[float] = []
    while True:
        ticket = await limits.acquire(item)
        starts.append(ticket.start)
        try:
            value = await fn(item)
        except Exception as exc:
            limits.settle(ticket, exc)
            now = clock.now()
            decision = retry.decide(exc, attempt=len(starts), elapsed=now - first, now=now)
            if decision.pause is not None and pause is not None:
                pause.trigger(decision.pause)
            if decision.delay is None:
                return starts, exc
            await clock.sleep(decision.delay)
        else:
            limits.settle(ticket, value)
            return starts, value


async def always_times_out(item: Any) -> Any:
    raise TimeoutError(item)


@pytest.mark.anyio
async def test_attempts_are_never_exceeded() -> None:
    async with virtual_time() as clock:
        retry = Retry(attempts=4, backoff=0.1, budget=None)
        limits = Limits([Rate(100)], **clock.kwargs)
        results: list[tuple[list[float], Any]] = []

        async def one(i: int) -> None:
            results.append(await call_with_retries(always_times_out, i, retry, limits, clock))

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(one, i)
        assert len(results) == 20
        assert all(len(starts) == 4 for starts, _ in results)
        assert all(isinstance(error, TimeoutError) for _, error in results)


@pytest.mark.anyio
async def test_a_success_after_failures_stops_retrying() -> None:
    async with virtual_time() as clock:
        failures = {"left": 2}

        async def flaky(item: Any) -> str:
            if failures["left"]:
                failures["left"] -= 1
                raise ConnectionError("reset")
            return "ok"

        retry = Retry(attempts=5, backoff=1, jitter=0, budget=None)
        t0 = clock.now()
        starts, value = await call_with_retries(flaky, "x", retry, Limits(**clock.kwargs), clock)
        assert value == "ok"
        assert [s - t0 for s in starts] == pytest.approx([0.0, 1.0, 3.0])


@pytest.mark.anyio
async def test_the_deadline_is_honoured() -> None:
    async with virtual_time() as clock:
        retry = Retry(attempts=100, backoff=1, max_backoff=1, jitter=0, deadline=5.5, budget=None)
        t0 = clock.now()
        starts, error = await call_with_retries(
            always_times_out, 0, retry, Limits(**clock.kwargs), clock
        )
        assert isinstance(error, TimeoutError)
        assert [s - t0 for s in starts] == pytest.approx([0, 1, 2, 3, 4, 5])


@pytest.mark.anyio
async def test_the_budget_stops_a_retry_storm() -> None:
    async with virtual_time() as clock:
        budget = RetryBudget(0.2, window=60, minimum=5)
        retry = Retry(attempts=5, backoff=0.1, max_backoff=1, budget=budget)
        limits = Limits([Rate(1_000)], **clock.kwargs)
        attempts: list[int] = []

        async def one(i: int) -> None:
            starts, _ = await call_with_retries(always_times_out, i, retry, limits, clock)
            attempts.append(len(starts))

        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(one, i)
        retries = sum(attempts) - len(attempts)
        assert retries == 0.2 * 200 + 5  # the budget, fully used and never exceeded
        assert sum(attempts) < 200 * 5  # what an unbudgeted storm would send
