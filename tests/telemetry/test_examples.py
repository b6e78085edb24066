"""The OpenTelemetry examples run and exit 0 (each in its own interpreter: they install global providers)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(name: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / name)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_console_example():
    out = run("otel_console.py")
    assert '"name": "chat gpt-4o"' in out and '"name": "chat gpt-4o-mini"' in out
    assert '"name": "breaker.tripped"' in out
    assert "gen_ai.client.token.usage" in out and "breaker.cost" in out


@pytest.mark.skipif(importlib.util.find_spec("opentelemetry.exporter.prometheus") is None,
                    reason="needs opentelemetry-exporter-prometheus")
def test_prometheus_example():
    out = run("otel_prometheus.py")
    assert 'breaker_trips_total{breaker_scope="session",breaker_trip_reason="budget"' in out
    assert 'breaker_feature="search"' in out
