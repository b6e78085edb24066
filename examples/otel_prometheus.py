"""breaker's metrics on a Prometheus /metrics endpoint (no API key, no network beyond loopback).

Needs ``pip install opentelemetry-exporter-prometheus`` (the application's
choice of exporter; breaker itself depends on ``opentelemetry-api`` only).

The agent below serves two features; the script then scrapes its own
/metrics endpoint, as Prometheus would, and prints breaker's series:
``breaker_cost_USD_total`` by model and feature, ``breaker_trips_total`` by
reason, and the GenAI histograms ``gen_ai_client_token_usage`` and
``gen_ai_client_operation_duration_seconds``. Useful queries::

    sum by (breaker_feature) (rate(breaker_cost_USD_total[1h]))     # USD per second, per feature
    sum by (breaker_trip_reason) (increase(breaker_trips_total[1d]))

Run: ``.venv/bin/python examples/otel_prometheus.py``
"""

from __future__ import annotations

import itertools
import urllib.request

from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import start_http_server

import breaker
from breaker import Breaker, Budget, Usage
from breaker.adapter import Call

server, _thread = start_http_server(port=0, addr="127.0.0.1")  # a real deployment picks a fixed port
port = server.server_port
metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))

guard = Breaker(budgets=[Budget(usd=0.02)], alerts=[])  # telemetry=True by default
steps = itertools.count()


def model_call(model: str, tokens: int) -> None:
    ticket = guard.admit(Call(model, "openai", input_tokens=tokens, max_output_tokens=500, fingerprint=next(steps)))
    guard.settle(ticket, Usage(input_tokens=tokens, output_tokens=300))


for n in range(5):
    with guard.session(f"search-{n}", feature="search"):
        model_call("gpt-4o-mini", 2_000)
try:
    with guard.session("support-1", feature="support"):
        while True:  # runs until its $0.02 session budget trips
            model_call("gpt-4o", 4_000)
except breaker.SessionKilled:
    pass

with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
    exposition = response.read().decode()
ours = [line for line in exposition.splitlines() if line.startswith(("breaker_", "gen_ai_client_token_usage_sum"))]
print("\n".join(ours))
server.shutdown()
assert any(line.startswith("breaker_trips_total") for line in ours), "no trip was exported"
assert any('breaker_feature="search"' in line for line in ours), "no cost by feature was exported"
