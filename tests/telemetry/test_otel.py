"""`anyfan.otel`: spans per attempt and metrics, read back through the SDK's in-memory exporters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import anyfan
import anyfan.otel
from anyfan import Fan, Rate, Retry
from anyfan._core import _telemetry
from anyfan.otel._attributes import error_attributes, request_attributes, response_attributes

pytestmark = pytest.mark.anyio


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def metrics(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = list(metric.data.data_points)
        return found

    def total(self, name: str) -> float:
        return float(sum(point.value for point in self.metrics().get(name, [])))


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    telemetry = Telemetry()
    anyfan.otel.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    assert anyfan.otel.instrumented()
    try:
        yield telemetry
    finally:
        anyfan.otel.uninstrument()
    assert not anyfan.otel.instrumented()


REQUEST = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 7}
REPLY = {
    "id": "chatcmpl-1",
    "model": "gpt-4o-mini-2024",
    "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
    "choices": [{"finish_reason": "stop"}],
}


class Status429(ConnectionError):
    status_code = 429


async def test_a_span_per_attempt_with_genai_attributes(otel: Telemetry) -> None:
    seen_spans: list[int] = []
    tries = 0

    async def create(request: dict[str, Any]) -> dict[str, Any]:
        nonlocal tries
        tries += 1
        seen_spans.append(trace.get_current_span().get_span_context().span_id)
        await anyio.lowlevel.checkpoint()
        if tries < 3:
            raise Status429("slow down")
        return REPLY

    rpm = Rate(6000, per=60)
    fan = Fan(4, limits=[rpm], retry=Retry(3, backoff=0.001, max_backoff=0.001, budget=None))
    assert await fan.call(create, REQUEST) == REPLY
    spans = otel.spans.get_finished_spans()
    assert [s.name for s in spans] == ["chat gpt-4o-mini"] * 3
    assert [s.attributes["anyfan.attempt"] for s in spans] == [1, 2, 3]  # type: ignore[index]
    assert [s.context.span_id for s in spans] == seen_spans  # current while the call ran
    first, _, last = spans
    assert first.status.status_code is StatusCode.ERROR
    assert first.attributes["http.response.status_code"] == 429  # type: ignore[index]
    assert first.attributes["error.type"] == "Status429"  # type: ignore[index]
    assert first.events[0].name == "exception"
    assert first.kind is trace.SpanKind.CLIENT
    assert last.attributes["gen_ai.request.model"] == "gpt-4o-mini"  # type: ignore[index]
    assert last.attributes["gen_ai.request.max_tokens"] == 7  # type: ignore[index]
    assert last.attributes["gen_ai.usage.input_tokens"] == 3  # type: ignore[index]
    assert last.attributes["gen_ai.usage.output_tokens"] == 5  # type: ignore[index]
    assert last.attributes["gen_ai.response.model"] == "gpt-4o-mini-2024"  # type: ignore[index]
    assert tuple(last.attributes["gen_ai.response.finish_reasons"]) == ("stop",)  # type: ignore[index, arg-type]
    assert otel.total("anyfan.calls.started") == 3
    assert otel.total("anyfan.calls.succeeded") == 1
    assert otel.total("anyfan.calls.retried") == 2
    assert otel.total("anyfan.calls.failed") == 0
    assert sorted(p.count for p in otel.metrics()["anyfan.call.duration"]) == [1, 2]  # error.type
    assert sum(p.count for p in otel.metrics()["anyfan.limiter.wait"]) == 3
    durations = otel.metrics()["gen_ai.client.operation.duration"]
    assert sorted(p.count for p in durations) == [1, 2]
    assert {p.attributes.get("error.type") for p in durations} == {None, "Status429"}
    assert all(p.attributes["gen_ai.operation.name"] == "chat" for p in durations)
    tokens = {
        p.attributes["gen_ai.token.type"]: p.sum
        for p in otel.metrics()["gen_ai.client.token.usage"]
    }
    assert tokens == {"input": 3, "output": 5}
    [admitted] = otel.metrics()["anyfan.rate.admitted"]
    assert (admitted.attributes["anyfan.rate"], admitted.value) == ("6000/60s", 3)
    assert otel.total("anyfan.rate.settled") == 3


async def test_final_failures_pauses_and_map_are_reported(otel: Telemetry) -> None:
    async def busy(_: int) -> None:
        await anyio.lowlevel.checkpoint()
        raise Status429("busy")

    retry = Retry(2, backoff=0.001, max_backoff=0.001, budget=None, delay_hint=lambda e: 0.001)
    with pytest.raises(anyfan.FanError):
        await anyfan.map(busy, [1, 2], retry=retry, errors="collect")
    assert otel.total("anyfan.calls.failed") == 2
    assert otel.total("anyfan.calls.started") == 4
    assert otel.total("anyfan.pause.time") > 0
    names = {s.name for s in otel.spans.get_finished_spans()}
    assert names == {"anyfan.call"}


async def test_cancelled_attempts_are_counted(otel: Telemetry) -> None:
    fan = Fan(2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(fan.call, anyio.sleep, 1000)
        while fan.in_flight == 0:
            await anyio.lowlevel.checkpoint()
        tg.cancel_scope.cancel()
    assert otel.total("anyfan.calls.cancelled") == 1
    [span] = otel.spans.get_finished_spans()
    assert span.attributes is not None
    assert str(span.attributes["error.type"]) in ("CancelledError", "Cancelled")


async def test_without_an_sdk_nothing_is_recorded_and_calls_still_work() -> None:
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    anyfan.otel.instrument()
    try:
        assert anyfan.otel.instrumented()
        assert _telemetry.current() is None  # so Fans keep their fast path
        assert _telemetry.current() is None  # (answered from the cached look)
        fan = Fan(2, retry=Retry(2))
        await fan.call(anyio.sleep, 0)
        with pytest.raises(ValueError, match="no"):
            await fan.call(_fail, "no")
        assert (fan.stats.succeeded, fan.stats.failed) == (1, 1)
    finally:
        anyfan.otel.uninstrument()


async def _fail(message: str) -> None:
    raise ValueError(message)


async def test_a_reply_without_usage_records_no_tokens(otel: Telemetry) -> None:
    async def create(request: dict[str, Any]) -> dict[str, Any]:
        return {"id": "no-usage"}

    await Fan(2).call(create, REQUEST)
    assert "gen_ai.client.token.usage" not in otel.metrics()
    [point] = otel.metrics()["gen_ai.client.operation.duration"]
    assert point.count == 1


async def test_final_failures_without_a_retry_policy(otel: Telemetry) -> None:
    fan = Fan(2, limits=[Rate(1000)])
    with pytest.raises(ValueError, match="final"):
        await fan.call(_fail, "final")
    [point] = otel.metrics()["anyfan.calls.failed"]
    assert (point.value, point.attributes["error.type"]) == (1, "ValueError")


async def test_metrics_alone_are_recorded_without_a_tracer() -> None:
    telemetry = Telemetry()
    anyfan.otel.instrument(meter_provider=telemetry.meter_provider)
    try:
        await Fan(2).call(anyio.sleep, 0)
    finally:
        anyfan.otel.uninstrument()
    assert telemetry.total("anyfan.calls.started") == 1
    assert telemetry.total("anyfan.calls.succeeded") == 1
    assert telemetry.spans.get_finished_spans() == ()


def test_attributes_by_shape() -> None:
    assert request_attributes("plain") == ("anyfan.call", {})
    assert request_attributes({"model": 3, "messages": []}) == ("anyfan.call", {})
    assert request_attributes({"model": "m"}) == ("anyfan.call", {})
    name, attributes = request_attributes(
        {"model": "e", "input": "x", "temperature": 0.5, "max_completion_tokens": 9}
    )
    assert name == "embeddings e"
    assert attributes["gen_ai.request.temperature"] == 0.5
    assert attributes["gen_ai.request.max_tokens"] == 9

    class Usage:
        input_tokens = 4
        output_tokens = 6

    class Reply:
        usage = Usage()
        choices = ()

    assert response_attributes(Reply()) == {
        "gen_ai.usage.input_tokens": 4,
        "gen_ai.usage.output_tokens": 6,
    }
    assert response_attributes(None) == {}
    assert response_attributes({"usage": {}}) == {}
    assert "gen_ai.request.max_tokens" not in request_attributes({"model": "m", "prompt": "p"})[1]

    class Response:
        status_code = 503

    class APIError(Exception):
        response = Response()

    assert error_attributes(APIError()) == {
        "error.type": "APIError",
        "http.response.status_code": 503,
    }


def test_a_misuse_inside_an_attempt_stops_the_call_and_is_counted_cancelled(
    otel: Telemetry,
) -> None:
    with anyfan.blocking.Fan(2) as fan:

        async def calls_back_blocking(i: int) -> list[int]:
            return fan.map(abs, [i])  # from the Fan's own loop thread: a misuse

        with pytest.raises(RuntimeError, match="own event loop's thread"):
            fan.map(calls_back_blocking, [-1])
        assert fan.stats.cancelled == 1
    [span] = otel.spans.get_finished_spans()
    assert span.attributes is not None
