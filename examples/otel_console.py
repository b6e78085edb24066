"""Spans and metrics for every model call, printed to the console (no API key, no network).

The application owns the OpenTelemetry SDK; breaker only uses the API. Here
the SDK prints each finished span and, at exit, the metrics:

* a CLIENT span per call, ``chat gpt-4o`` / ``chat gpt-4o-mini``, with the
  GenAI attributes (``gen_ai.usage.input_tokens``…), the cost
  (``gen_ai.usage.cost.amount``) and breaker's own (``breaker.session``,
  ``breaker.budget.remaining_usd``, ``breaker.degraded``…);
* span events when a budget threshold passes, when calls are degraded, and
  when the run is stopped (that one on the agent's own span: a refused call
  never gets a span of its own);
* ``gen_ai.client.token.usage``, ``gen_ai.client.operation.duration``,
  ``breaker.cost`` and ``breaker.trips``.

Run: ``.venv/bin/python examples/otel_console.py``
"""

from __future__ import annotations

import itertools

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

import breaker
from breaker import Breaker, Budget, Degrade, Usage
from breaker.adapter import Call

# 1. The application sets up the SDK (before or after building the Breaker).
resource = Resource.create({"service.name": "support-agent"})
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(tracer_provider)
reader = PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=3_600_000)
meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
metrics.set_meter_provider(meter_provider)

# 2. telemetry=True (the default) emits through whatever SDK is installed.
guard = Breaker(
    budgets=[Budget(usd=0.05, degrade_at=0.5, warn_at=(0.5, 0.8))],
    degrade=Degrade(model_map={"gpt-4o": "gpt-4o-mini"}),
    alerts=[],  # the console shows the span events instead of log lines
    telemetry=True,
)
steps = itertools.count(1)


def model_call(history: int) -> None:
    """What a provider adapter does around a real request (guard.wrap(client) does it for you)."""
    ticket = guard.admit(Call("gpt-4o", "openai", input_tokens=history, max_output_tokens=800, fingerprint=next(steps)))
    # ... send the request with ticket.model and the patched max_tokens ...
    guard.settle(ticket, Usage(input_tokens=history, output_tokens=400, cache_read_tokens=history // 2))


tracer = trace.get_tracer("support-agent")
try:
    with tracer.start_as_current_span("agent run"), guard.session("ticket-42", feature="support", user="acme"):
        history = 3_000
        while True:  # a runaway agent: only the budget stops it
            model_call(history)
            history += 2_000
except breaker.SessionKilled as killed:
    print(f"\nstopped: {killed}\n")

meter_provider.force_flush()
meter_provider.shutdown()
tracer_provider.shutdown()
