"""Without an SDK, telemetry is a no-op; a meter provider, then a tracer provider, installed after
``Breaker()`` are picked up.

Run in a fresh interpreter: the global tracer provider can be set only once per process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import breaker
    from breaker import Breaker, Usage
    from breaker.adapter import Call

    guard = Breaker(alerts=[])                      # telemetry=True: OTel span mode
    assert type(guard.telemetry).__name__ == "OTel"
    with guard.session("before"):
        ticket = guard.admit(Call("gpt-4o-mini", "openai", input_tokens=10, max_output_tokens=10))
        assert ticket.span is None, ticket.span   # no SDK: no span, no clock for a metric, nothing
        guard.settle(ticket, Usage(10, 10))
    assert not any(m.startswith("opentelemetry.sdk") for m in sys.modules), "the library imported the SDK"

    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    time.sleep(0.06)                                 # past the provider re-check interval
    with guard.session("metered"):
        ticket = guard.admit(Call("gpt-4o-mini", "openai", input_tokens=10, max_output_tokens=10))
        assert isinstance(ticket.span, float), ticket.span   # a meter provider, no tracer: the start time
        guard.settle(ticket, Usage(10, 10))
    names = {m.name for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics
             for m in sm.metrics}
    assert "gen_ai.client.token.usage" in names and "gen_ai.client.operation.duration" in names, names

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    time.sleep(0.06)                                 # past the provider re-check interval
    with guard.session("after"):
        ticket = guard.admit(Call("gpt-4o-mini", "openai", input_tokens=10, max_output_tokens=10))
        guard.settle(ticket, Usage(10, 10))
    names = [(s.name, s.attributes["breaker.session"]) for s in exporter.get_finished_spans()]
    assert names == [("chat gpt-4o-mini", "after")], names
    print("ok")
    """
)


def test_no_sdk_is_a_no_op_and_a_late_sdk_is_picked_up():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
