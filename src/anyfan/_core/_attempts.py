"""Every attempt for one item under a policy: slots, limits, shared pause, retries, hooks.

Shared by the engine (each worker's item, when anything beyond the
concurrency limit applies) and by `Fan.call`, so that a single call and a
mapped item go through exactly the same steps.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from . import _log
from ._errors import Misuse, StoreUnavailable
from ._hooks import PauseEvent, RetryEvent
from ._telemetry import CURRENT

if TYPE_CHECKING:
    from ._policy import Policy
    from ._retry import Decision, Pause
    from ._slots import Slots
    from ._stats import Stats
    from ._telemetry import Telemetry

T = TypeVar("T")


async def timed(
    call: Callable[[T], Awaitable[Any]], item: T, timeout: float, now: Callable[[], float]
) -> Any:
    """``await call(item)``, failing with `TimeoutError` after ``timeout`` seconds.

    A call in a worker thread cannot be interrupted; it is waited for, then
    its late result is discarded as the timeout demands.
    """
    with anyio.fail_after(timeout) as scope:
        value = await call(item)
    if now() >= scope.deadline:
        raise TimeoutError(f"call took longer than its timeout of {timeout:g}s")
    return value


async def guarded(
    call: Callable[[T], Awaitable[Any]],
    item: T,
    slots: Slots,
    stats: Stats,
    policy: Policy,
    now: Callable[[], float],
) -> tuple[Any, Exception | None, int, float]:
    """Run every attempt for ``item``; return ``(value, error, attempts, first start)``.

    The order matters: a slot first, then the pause and the rate limits,
    so that admission and start coincide and the provider sees the
    spacing the limiter computed. No slot is held while backing off.
    Non-`Exception` errors (cancellation, KeyboardInterrupt) propagate.
    """
    limits, pause, retry, hooks = policy.limits, policy.pause, policy.retry, policy.hooks
    telemetry = CURRENT.active
    if telemetry is not None and not telemetry.live():
        telemetry = None
    attempt = 0
    first = 0.0
    while True:
        error: Exception | None = None
        value: Any = None
        ticket = None
        if not slots.try_acquire():  # no coroutine when a slot is free
            await slots.acquire()
        try:
            asked = now() if telemetry is not None else 0.0
            if limits is not None:
                try:
                    priced = limits.ticket(item)
                    # Admitted at once, the usual case, without a coroutine; else wait
                    # (which also waits out the pause).
                    if not limits.try_admit(priced):
                        await limits.admit(priced)
                    ticket = priced
                except StoreUnavailable as exc:
                    # The shared quota's store is down: nothing was charged or started,
                    # and the retry policy decides, as for any connection error.
                    if retry is None:
                        stats.failed += 1
                        return None, exc, attempt, first if attempt else now()
                    if attempt == 0:
                        first = now()
                    attempt += 1  # counts against the policy's attempts, never started
                    error = exc
                except Exception as exc:
                    # A broken ``cost`` function, or a cost no limit could ever admit
                    # (`CostTooLarge`), fails its item only, before anything is charged
                    # or started; retrying cannot help.
                    stats.failed += 1
                    return None, exc, attempt, first if attempt else now()
            elif pause is not None:
                await pause.wait()
            if error is None:
                start = now()
                if telemetry is not None:
                    telemetry.waited(start - asked)
                    if ticket is not None:
                        telemetry.admitted(limits.rates, ticket.costs)  # type: ignore[union-attr]
                if attempt == 0:
                    first = start
                    if retry is not None:
                        retry.record_call(start)
                attempt += 1
                stats.started += 1
                if telemetry is None:
                    try:
                        value = await call(item)
                    except Misuse:
                        stats.cancelled += 1
                        raise  # a misuse stops the whole run, not one item
                    except Exception as exc:
                        error = exc
                    except BaseException:
                        stats.cancelled += 1
                        raise
                else:
                    value, error = await _observed(telemetry, call, item, attempt, stats)
        finally:
            slots.release()
        if ticket is not None:
            assert limits is not None
            try:
                units = limits.settle(ticket, value if error is None else error)
            except Exception as exc:  # a broken ``actual`` function fails its item
                error = error or exc
            else:
                if telemetry is not None:
                    telemetry.settled(limits.rates, units)
            if ticket.pending:  # refunds owed to a shared store: one round trip, after the call
                await limits.flush(ticket)
        if error is None:
            stats.succeeded += 1
            return value, None, attempt, first
        if retry is None:
            stats.failed += 1
            if telemetry is not None:
                telemetry.failed(error)
            return None, error, attempt, first
        t = now()
        elapsed = t - first
        decision = retry.decide(error, attempt=attempt, elapsed=elapsed, now=t)
        if decision.pause is not None and pause is not None:
            _pause(pause, decision, item, error, hooks, telemetry)
        if decision.delay is None:
            stats.failed += 1
            if telemetry is not None:
                telemetry.failed(error)
            if decision.reason != "not retryable":
                _log.giving_up(item, attempt, error, decision.reason)
            return None, error, attempt, first
        stats.retried += 1
        _log.retrying(item, attempt, error, decision.delay)
        if hooks.on_retry is not None or telemetry is not None:
            event = RetryEvent(item, attempt, error, decision.delay, elapsed)
            if telemetry is not None:
                telemetry.retried(event)
            if hooks.on_retry is not None:
                hooks.on_retry(event)
        await anyio.sleep(decision.delay)


async def _observed(
    telemetry: Telemetry,
    call: Callable[[T], Awaitable[Any]],
    item: T,
    attempt: int,
    stats: Stats,
) -> tuple[Any, Exception | None]:
    """One attempt inside the telemetry's span."""
    with telemetry.attempt(item, attempt) as span:
        try:
            value = await call(item)
        except Misuse:
            stats.cancelled += 1
            raise
        except Exception as exc:
            span.failed(exc)
            return None, exc
        except BaseException as exc:
            stats.cancelled += 1
            span.failed(exc)
            raise
        span.succeeded(value)
        return value, None


def _pause(
    pause: Pause,
    decision: Decision,
    item: Any,
    error: Exception,
    hooks: Any,
    telemetry: Telemetry | None,
) -> None:
    """Hold every caller for the server's delay; report it if that extended the hold."""
    assert decision.pause is not None
    before = pause.schedule.until
    pause.trigger(decision.pause)
    after = pause.schedule.until
    if after <= before:
        return
    # The pause now ends ``decision.pause`` after the pause's own "now".
    added = min(decision.pause, after - before)
    _log.pausing(item, error, decision.pause)
    if hooks.on_pause is not None or telemetry is not None:
        event = PauseEvent(item, error, decision.pause, added)
        if telemetry is not None:
            telemetry.paused(event)
        if hooks.on_pause is not None:
            hooks.on_pause(event)


#: The code of this module's frames a call's error passes through (`shed_frames`).
FRAMES = frozenset({timed.__code__, guarded.__code__, _observed.__code__})
