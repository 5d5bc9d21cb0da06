"""OpenTelemetry for anyfan: a span per call attempt and metrics for calls, pauses and limits.

Needs only ``opentelemetry-api`` (``pip install 'anyfan[otel]'``); the
application configures the SDK and exporters as usual. Nothing is recorded
until `instrument` is called, and while no SDK is configured the spans and
metrics are skipped, so instrumenting costs nothing measurable.
"""

from ._instrument import instrument, instrumented, uninstrument

__all__ = ["instrument", "instrumented", "uninstrument"]
