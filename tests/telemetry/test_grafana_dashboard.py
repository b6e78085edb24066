"""``examples/grafana_dashboard.json`` asks Prometheus only for series breaker really exports.

A guard records calls (two features, a failure, a trip) with the OpenTelemetry
SDK and the Prometheus exporter, in its own interpreter (it installs a global
meter provider); every metric and label a panel or a variable names must be
in that exposition, under the exporter's own spelling (``breaker_cost_USD_total``).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "examples" / "grafana_dashboard.json"

EXPORT = r"""
import json, re
from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import REGISTRY, generate_latest
import breaker
from breaker import Breaker, Budget, Usage
from breaker.adapter import Call

metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))
guard = Breaker(budgets=[Budget(usd=0.01)], alerts=[], loops=None)
step = iter(range(1000))

def call(model, error=None):
    ticket = guard.admit(Call(model, "openai", input_tokens=2000, max_output_tokens=500, fingerprint=next(step)))
    guard.settle(ticket, None if error else Usage(2000, 300), error=error)

with guard.session("s-1", feature="search"):
    call("gpt-4o-mini")
    call("gpt-4o-mini", error=TimeoutError("timed out"))
try:
    with guard.session("s-2", feature="support"):
        while True:
            call("gpt-4o")
except breaker.SessionKilled:
    pass
series = {}
for line in generate_latest(REGISTRY).decode().splitlines():
    m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ", line)
    if m and not line.startswith("#"):
        labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(2) or ""))
        series.setdefault(m.group(1), set()).update(labels)
print(json.dumps({k: sorted(v) for k, v in series.items()}))
"""

pytestmark = pytest.mark.skipif(importlib.util.find_spec("opentelemetry.exporter.prometheus") is None,
                                reason="needs opentelemetry-exporter-prometheus (the otel extra)")


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    done = subprocess.run([sys.executable, "-c", EXPORT], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    return {name: set(labels) for name, labels in json.loads(done.stdout.splitlines()[-1]).items()}


def queries(dashboard: dict) -> list[tuple[str, str, str]]:
    """(panel title, expr, legendFormat) of every target."""
    return [(p["title"], t["expr"], t.get("legendFormat", "")) for p in dashboard["panels"] for t in p["targets"]]


METRIC = re.compile(r"\b((?:breaker|gen_ai)_[A-Za-z0-9_]+)\b")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
BY = re.compile(r"\bby\s*\(([^)]*)\)")


def test_every_query_names_exported_metrics_and_labels(exported):
    dashboard = json.loads(DASHBOARD.read_text())
    assert queries(dashboard), "no panel has a query"
    for title, expr, legend in queries(dashboard):
        names = set(METRIC.findall(BY.sub("", re.sub(r"\{[^}]*\}", "", expr))))  # labels left out
        assert names, (title, expr)
        missing = names - exported.keys()
        assert not missing, f"{title}: {missing} not exported (have {sorted(exported)})"
        labels = set().union(*(exported[n] for n in names))
        used = set(MATCHER.findall(expr)) | {x.strip() for g in BY.findall(expr) for x in g.split(",") if x.strip()}
        assert used <= labels, f"{title}: labels {used - labels} are on none of {names}"
        for shown in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend):
            assert shown in used, f"{title}: legend shows {shown}, which the query does not keep"


def test_variables_and_layout(exported):
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("feature", "model"):
        metric, label = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variables[name]["definition"]).groups()
        assert metric in exported and label in exported[metric], name
        assert variables[name]["allValue"] == ".*"  # "All" keeps the series that lack the label too
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"])
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for subject in ("spend by feature", "spend by model", "tokens", "trips", "duration"):
        assert subject in titles, subject
