"""`instrument`: report every Fan's attempts, retries, pauses and limits to OpenTelemetry."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import __version__
from .._core import install_telemetry, installed_telemetry
from ._attributes import error_attributes, request_attributes, response_attributes

try:
    from opentelemetry import context, metrics, trace
    from opentelemetry.trace import ProxyTracerProvider, SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - the extra is installed in every test session
    raise ImportError(
        "anyfan.otel needs opentelemetry-api; install it with: pip install 'anyfan[otel]'"
    ) from exc

if TYPE_CHECKING:
    from types import TracebackType

    from .._core import PauseEvent, Rate, RetryEvent

_NAME = "anyfan"
#: Seconds between looks for an SDK configured after `instrument` was called.
RECHECK = 1.0


def _no_tracer(provider: Any) -> bool:
    return isinstance(provider, ProxyTracerProvider | trace.NoOpTracerProvider)


def _no_meter(provider: Any) -> bool:
    # The API's stand-in until a provider is set has no public name to check against.
    return isinstance(provider, metrics.NoOpMeterProvider) or type(provider).__name__ in (
        "_ProxyMeterProvider",
        "ProxyMeterProvider",
    )


class _Attempt:
    """One attempt's span (current while the call runs) and its measurements."""

    __slots__ = ("_attributes", "_genai", "_owner", "_span", "_started", "_token")

    def __init__(self, owner: OtelTelemetry, item: object, number: int) -> None:
        self._owner = owner
        name, attributes = request_attributes(item)
        attributes["anyfan.attempt"] = number
        kind = SpanKind.CLIENT if "gen_ai.operation.name" in attributes else SpanKind.INTERNAL
        self._span = owner.tracer.start_span(name, kind=kind, attributes=attributes)
        self._token = context.attach(trace.set_span_in_context(self._span))
        self._attributes: dict[str, Any] = {}
        self._genai: dict[str, Any] | None = None
        if "gen_ai.request.model" in attributes:
            self._attributes["gen_ai.request.model"] = attributes["gen_ai.request.model"]
            self._genai = {
                "gen_ai.operation.name": attributes["gen_ai.operation.name"],
                "gen_ai.request.model": attributes["gen_ai.request.model"],
            }
        self._started = time.perf_counter()
        owner.started.add(1, self._attributes)

    def __enter__(self) -> _Attempt:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        context.detach(self._token)
        elapsed = time.perf_counter() - self._started
        self._owner.duration.record(elapsed, self._attributes)
        if self._genai is not None:
            if "error.type" in self._attributes:
                self._genai["error.type"] = self._attributes["error.type"]
            self._owner.genai_duration.record(elapsed, self._genai)
        self._span.end()

    def succeeded(self, value: Any) -> None:
        attributes = response_attributes(value)
        self._span.set_attributes(attributes)
        self._owner.succeeded.add(1, self._attributes)
        if self._genai is not None:
            for key, kind in (
                ("gen_ai.usage.input_tokens", "input"),
                ("gen_ai.usage.output_tokens", "output"),
            ):
                if key in attributes:
                    self._owner.genai_tokens.record(
                        attributes[key], {**self._genai, "gen_ai.token.type": kind}
                    )

    def failed(self, error: BaseException) -> None:
        attributes = error_attributes(error)
        self._attributes["error.type"] = attributes["error.type"]
        self._span.set_attributes(attributes)
        if isinstance(error, Exception):
            self._span.record_exception(error)
            self._span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        else:
            self._owner.cancelled.add(1, self._attributes)


class OtelTelemetry:
    """The engine's telemetry interface, implemented so that it reports to OpenTelemetry."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._live = False
        self._recheck_at = -math.inf
        self.tracer = trace.get_tracer(_NAME, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_NAME, __version__, meter_provider=meter_provider)
        counter = meter.create_counter
        self.started = counter("anyfan.calls.started", "{attempt}", "Attempts started")
        self.succeeded = counter("anyfan.calls.succeeded", "{attempt}", "Attempts that returned")
        self.failed_calls = counter("anyfan.calls.failed", "{call}", "Calls that failed for good")
        self.retried_calls = counter("anyfan.calls.retried", "{attempt}", "Failed, then retried")
        self.cancelled = counter("anyfan.calls.cancelled", "{attempt}", "Attempts cancelled")
        self.pause = counter("anyfan.pause.time", "s", "Seconds of shared pause started")
        self.admitted_units = counter("anyfan.rate.admitted", "{unit}", "Units admitted per Rate")
        self.settled_units = counter("anyfan.rate.settled", "{unit}", "Units settled per Rate")
        self.duration = meter.create_histogram(
            "anyfan.call.duration", "s", "Duration of each attempt"
        )
        self.wait = meter.create_histogram(
            "anyfan.limiter.wait", "s", "Time an attempt waited for the rate limits and pause"
        )
        # OpenTelemetry's GenAI client metrics, for OpenAI-style requests.
        self.genai_duration = meter.create_histogram(
            "gen_ai.client.operation.duration", "s", "GenAI operation duration"
        )
        self.genai_tokens = meter.create_histogram(
            "gen_ai.client.token.usage", "{token}", "Number of input and output tokens used"
        )

    def live(self) -> bool:
        """Whether an SDK is configured (a global provider, once set, stays set).

        Looking the providers up costs more than a call through anyfan, so
        while there is none the answer is kept for `RECHECK` seconds.
        """
        if self._live:
            return True
        now = time.monotonic()
        if now < self._recheck_at:
            return False
        self._recheck_at = now + RECHECK
        self._live = not (
            _no_tracer(self._tracer_provider or trace.get_tracer_provider())
            and _no_meter(self._meter_provider or metrics.get_meter_provider())
        )
        return self._live

    def attempt(self, item: Any, number: int) -> _Attempt:
        return _Attempt(self, item, number)

    def waited(self, seconds: float) -> None:
        self.wait.record(seconds)

    def admitted(self, rates: Sequence[Rate], units: Sequence[float]) -> None:
        for rate, amount in zip(rates, units, strict=True):
            self.admitted_units.add(amount, {"anyfan.rate": rate.name})

    def settled(self, rates: Sequence[Rate], units: Sequence[float]) -> None:
        for rate, amount in zip(rates, units, strict=True):
            self.settled_units.add(amount, {"anyfan.rate": rate.name})

    def failed(self, error: Exception) -> None:
        self.failed_calls.add(1, {"error.type": type(error).__name__})

    def retried(self, event: RetryEvent[Any]) -> None:
        self.retried_calls.add(1, {"error.type": type(event.error).__name__})

    def paused(self, event: PauseEvent[Any]) -> None:
        self.pause.add(event.added)


def instrument(*, tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Report every Fan's work to OpenTelemetry from now on.

    Each call attempt gets a span (current while the call runs, so HTTP
    client spans nest under it), named ``"chat gpt-4o"`` with the GenAI
    attributes for an OpenAI-style request, else ``"anyfan.call"``. Metrics:
    ``anyfan.calls.started|succeeded|failed|retried|cancelled``,
    ``anyfan.call.duration`` and ``anyfan.limiter.wait`` (histograms, s),
    ``anyfan.pause.time`` (s) and ``anyfan.rate.admitted|settled`` (units,
    per Rate); for OpenAI-style requests also the GenAI client metrics
    ``gen_ai.client.operation.duration`` and ``gen_ai.client.token.usage``.
    While neither a tracer nor a meter provider is configured,
    nothing is done; one configured later is found within `RECHECK` seconds.

    Args:
        tracer_provider: Use this provider instead of the global one.
        meter_provider: Use this provider instead of the global one.
    """
    install_telemetry(OtelTelemetry(tracer_provider, meter_provider))


def uninstrument() -> None:
    """Stop reporting; anyfan then costs what it did before `instrument`."""
    install_telemetry(None)


def instrumented() -> bool:
    """Whether `instrument` is in force."""
    return isinstance(installed_telemetry(), OtelTelemetry)
