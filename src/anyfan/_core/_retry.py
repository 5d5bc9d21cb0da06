"""`Retry` (when and how long to wait before trying a failed call again) and `Pause`.

`Retry.decide` is pure: given the error, the attempt count and the time, it
says whether to retry and after how long. `Pause` is the shared hold: when a
server says "retry after N seconds" it is talking about the whole client, so
new starts on the whole Fan wait, then ramp back up instead of stampeding.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

from ._backoff import Backoff, directed_delay, within_deadline
from ._budget import RetryBudget
from ._clock import Clock, loop_token
from ._gate import Line, SleepUntil, Timebase
from ._validate import check_function, check_int, check_number, check_optional_number

RetryOn: TypeAlias = type[Exception] | tuple[type[Exception], ...] | Callable[[Exception], bool]

#: Errors retried when ``retry_on`` is not given: the transient failures of I/O.
DEFAULT_RETRY_ON: Final[tuple[type[Exception], ...]] = (TimeoutError, ConnectionError)


# -- validation -----------------------------------------------------------------


def _check_retry_on(value: object) -> RetryOn:
    types: tuple[object, ...] = value if isinstance(value, tuple) else (value,)
    if all(isinstance(t, type) for t in types):
        checked: list[type[Exception]] = []
        for t in types:
            assert isinstance(t, type)
            if not issubclass(t, Exception):
                raise ValueError(
                    f"retry_on cannot include {t.__name__}: only Exception subclasses are "
                    "retried; cancellation, KeyboardInterrupt and SystemExit never are"
                )
            checked.append(t)
        return tuple(checked)
    if callable(value):
        return value
    raise TypeError(
        f"retry_on must be an exception type, a tuple of them, or a predicate, got {value!r}"
    )


def _check_budget(value: object) -> RetryBudget | None:
    if value is None or isinstance(value, RetryBudget):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"budget must be a RetryBudget, a ratio or None, got {value!r}")
    return RetryBudget(value)


# -- deciding -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after a failed attempt.

    Attributes:
        delay: Seconds to wait before the next attempt, or ``None`` to give up.
        pause: Seconds the server asked every caller to wait (to pause the
            whole Fan for), or ``None``. Set even when giving up.
        reason: ``"retry"``, or why not: ``"not retryable"``, ``"attempts"``,
            ``"deadline"`` or ``"budget"``.
    """

    delay: float | None
    pause: float | None
    reason: str

    @property
    def retry(self) -> bool:
        """Whether to try again."""
        return self.delay is not None


class Retry:
    """When to retry a failed call, and how long to wait first.

    Backoff is exponential with full jitter: retry ``n`` waits a random time
    up to ``min(max_backoff, backoff * 2**(n-1))``. A server-directed delay
    from ``delay_hint`` (such as Retry-After) takes precedence, capped at
    ``max_hint``; it also pauses new starts on the whole Fan for that long.
    Every attempt passes the rate limits again.

    Never retried: cancellation, KeyboardInterrupt and other non-`Exception`
    errors, and anything ``retry_on`` rejects.

    Args:
        attempts: Most attempts per item, the first included (1 = never retry).
        backoff: Ceiling of the first retry's wait, in seconds.
        max_backoff: Largest backoff ceiling, in seconds.
        jitter: Randomised share of the wait, from 0 (none) to 1 (full jitter).
        deadline: Seconds from an item's first attempt after which no retry
            starts; ``None`` for no limit.
        retry_on: Exception types to retry, or a predicate ``fn(exc) -> bool``.
            By default, `TimeoutError` and `ConnectionError`.
        delay_hint: ``fn(exc) -> seconds | None``: the server-directed delay
            an error carries, if any.
        max_hint: Longest server-directed delay honoured, in seconds.
        budget: Retries allowed per recent first attempt (a `RetryBudget` or
            the ratio for one), so an outage surfaces as errors instead of a
            retry storm; ``None`` for no budget.
        ramp: Seconds over which starts ramp back up after a shared pause.

    Raises:
        TypeError, ValueError: If an argument is invalid; the message names it.
    """

    __slots__ = (
        "_backoff",
        "attempts",
        "budget",
        "deadline",
        "delay_hint",
        "max_hint",
        "ramp",
        "retry_on",
    )

    def __init__(
        self,
        attempts: int = 3,
        *,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        jitter: float = 1.0,
        deadline: float | None = None,
        retry_on: RetryOn = DEFAULT_RETRY_ON,
        delay_hint: Callable[[Exception], float | None] | None = None,
        max_hint: float = 120.0,
        budget: RetryBudget | float | None = 0.2,
        ramp: float = 5.0,
    ) -> None:
        self.attempts = check_int(attempts, "attempts", minimum=1)
        base = check_number(backoff, "backoff")
        cap = check_number(max_backoff, "max_backoff")
        if cap < base:
            raise ValueError(
                f"max_backoff ({max_backoff!r}) must be at least backoff ({backoff!r})"
            )
        # jitter=True / False read naturally as full / no jitter, so bools are accepted.
        share = (
            float(jitter)
            if isinstance(jitter, bool)
            else check_number(jitter, "jitter", positive=False, at_most=1.0)
        )
        self._backoff = Backoff(base, cap, share)
        self.deadline = check_optional_number(deadline, "deadline")
        self.retry_on = _check_retry_on(retry_on)
        self.delay_hint = check_function(delay_hint, "delay_hint")
        self.max_hint = check_number(max_hint, "max_hint")
        self.budget = _check_budget(budget)
        self.ramp = check_number(ramp, "ramp", positive=False)

    def __repr__(self) -> str:
        b = self._backoff
        return (
            f"Retry(attempts={self.attempts}, backoff={b.base:g}, max_backoff={b.cap:g}, "
            f"jitter={b.jitter:g}, deadline={self.deadline!r}, "
            f"retry_on={_describe(self.retry_on)}, delay_hint={_describe(self.delay_hint)}, "
            f"max_hint={self.max_hint:g}, budget={self.budget!r}, ramp={self.ramp:g})"
        )

    @property
    def backoff(self) -> Backoff:
        """The backoff schedule."""
        return self._backoff

    def accepts(self, error: BaseException) -> bool:
        """Whether ``error`` is of a kind worth retrying at all."""
        if not isinstance(error, Exception):
            return False
        if isinstance(self.retry_on, tuple):
            return isinstance(error, self.retry_on)
        return bool(self.retry_on(error))

    def hint(self, error: Exception) -> float | None:
        """Return the server-directed delay ``error`` carries (capped at ``max_hint``), or None."""
        if self.delay_hint is None:
            return None
        value = self.delay_hint(error)
        if value is None:
            return None
        return directed_delay(_number_or_nan(value), self.max_hint)

    def record_call(self, now: float) -> None:
        """Count an item's first attempt, made at ``now``, towards the retry budget."""
        if self.budget is not None:
            self.budget.record_call(now)

    def decide(
        self,
        error: BaseException,
        *,
        attempt: int,
        elapsed: float,
        now: float,
        rand: Callable[[], float] = random.random,
    ) -> Decision:
        """Decide what follows a failed attempt.

        When the answer is to retry, the retry is taken from the budget.

        Args:
            error: What the attempt raised.
            attempt: Attempts made so far, the failed one included (1 after the first).
            elapsed: Seconds since the item's first attempt started.
            now: The current time (for the budget's window).
            rand: Returns a float in [0, 1) for the jitter.
        """
        if not isinstance(error, Exception) or not self.accepts(error):
            return Decision(None, None, "not retryable")
        directed = self.hint(error)
        pause = directed if directed else None
        if attempt >= self.attempts:
            return Decision(None, pause, "attempts")
        delay = directed if directed is not None else self._backoff.delay(attempt, rand)
        if not within_deadline(elapsed, delay, self.deadline):
            return Decision(None, pause, "deadline")
        if self.budget is not None and not self.budget.spend(now):
            return Decision(None, pause, "budget")
        return Decision(delay, pause, "retry")


def _describe(value: object) -> str:
    """Name a function or a tuple of exception types, as a repr would show them."""
    if value is None:
        return "None"
    if isinstance(value, tuple):
        names = ", ".join(t.__name__ for t in value)
        return f"({names},)" if len(value) == 1 else f"({names})"
    return getattr(value, "__qualname__", None) or repr(value)


def _number_or_nan(value: object) -> float:
    """Return a hint as a float; anything but a number counts as no hint (NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


# -- the shared pause -----------------------------------------------------------


class PauseSchedule:
    """When new starts may go, given the pauses servers have asked for. Pure.

    A pause holds every new start until it ends. Starts then ramp back up in
    ``waves`` equal steps over ``ramp`` seconds, the allowance doubling each
    step (1 start, then 2 more, then 4 more, ...), like TCP's slow start;
    after the ramp there is no hold. A new pause that ends later replaces the
    current one; one that ends sooner changes nothing.

    Args:
        ramp: Seconds the ramp lasts (0: full speed as soon as a pause ends).
        waves: Steps in the ramp.
    """

    __slots__ = ("_paused", "_started", "_until", "active", "ramp", "waves")

    def __init__(self, ramp: float = 5.0, waves: int = 8) -> None:
        self.ramp = ramp
        self.waves = waves
        self._until = -math.inf
        self._started = 0
        self._paused = 0.0
        #: Whether a pause or its ramp may still be holding starts (read on every admission).
        self.active = False

    @property
    def until(self) -> float:
        """When the current (or last) pause ends."""
        return self._until

    def trigger(self, delay: float, now: float) -> bool:
        """Pause new starts for ``delay`` seconds from ``now``; return whether that extended it."""
        until = now + delay
        if until <= self._until:
            return False
        self._paused += until - max(self._until, now)
        self._until = until
        self._started = 0
        self.active = True
        return True

    def earliest(self, now: float) -> float:
        """Return the earliest time, at or after ``now``, that one more start may go."""
        if not self.active:
            return now
        if now < self._until:
            return self._until
        into = now - self._until
        if into >= self.ramp:
            self.active = False
            return now
        step = self.ramp / self.waves
        wave = int(into // step)
        if self._started < 2 ** (wave + 1) - 1:
            return now
        return self._until + (wave + 1) * step

    def take(self, now: float) -> None:
        """Count a start made at ``now`` (it passed `earliest`)."""
        if self.active and now >= self._until:
            self._started += 1

    def untake(self) -> None:
        """Give back a start that was counted but never made."""
        if self._started:
            self._started -= 1

    def paused_time(self, now: float) -> float:
        """Seconds of pause that have elapsed by ``now``, over all pauses."""
        return self._paused - max(0.0, self._until - now)

    def shift(self, delta: float) -> None:
        """Move the stored times by ``delta`` seconds (when the clock is swapped)."""
        self._until += delta


class Pause:
    """A hold on new starts shared by every worker of a Fan (and every thread of its facade).

    ``pause.trigger(seconds)`` holds new starts for that long; ``await
    pause.wait()`` returns when a new start may go, in arrival order. After a
    pause, starts ramp back up over ``ramp`` seconds (see `PauseSchedule`).
    While nothing is paused, ``wait`` returns at once without suspending.

    Args:
        ramp: Seconds over which starts ramp back up after a pause.
        waves: Steps in the ramp (the allowance doubles each step).
        clock: Returns the current time; defaults to `anyio.current_time`.
        sleep_until: Sleeps until a time on ``clock``; defaults to `anyio.sleep_until`.
    """

    __slots__ = ("_line", "_timebase", "schedule")

    def __init__(
        self,
        *,
        ramp: float = 5.0,
        waves: int = 8,
        clock: Clock | None = None,
        sleep_until: SleepUntil | None = None,
    ) -> None:
        self.schedule = PauseSchedule(
            check_number(ramp, "ramp", positive=False), check_int(waves, "waves", minimum=1)
        )
        self._line = Line(clock, sleep_until)
        self._timebase = Timebase()

    def __repr__(self) -> str:
        return f"Pause(ramp={self.schedule.ramp:g}, waves={self.schedule.waves})"

    @property
    def waiting(self) -> int:
        """How many callers are held."""
        return self._line.waiting

    def trigger(self, seconds: float) -> None:
        """Hold new starts for ``seconds`` from now (longer pauses win)."""
        self.schedule.trigger(seconds, self._line.now())

    def paused_time(self) -> float:
        """Seconds new starts have been held so far, over all pauses."""
        return self.schedule.paused_time(self._line.now())

    async def wait(self) -> None:
        """Return when one more start may go; hold the caller while paused or ramping."""
        if not self.schedule.active and not self._line.busy:
            return
        await self._line.join(self._attempt, self.schedule.untake)

    def _attempt(self, now: float) -> float | None:
        at = self.schedule.earliest(now)
        if at > now:
            return at
        self.schedule.take(now)
        return None

    def bind(self) -> None:
        """Prepare for use on the running event loop; call once at the start of each run."""
        token = loop_token()
        self._line.bind(token)
        self._rebase(token, self._line.now())

    def _rebase(self, token: object, now: float) -> None:
        shift = self._timebase.rebase(token, now)
        if shift:
            self.schedule.shift(shift)
