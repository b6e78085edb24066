"""The example scripts the README points to run as written, with no API key."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.cli.conftest import ROOT


def run_example(name: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OPENAI_API_KEY", None)
    return subprocess.run([sys.executable, str(ROOT / "examples" / name)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=180)


def test_quickstart_prices_the_call():
    result = run_example("quickstart.py")
    assert result.returncode == 0, result.stderr
    assert "model: Your order 42 is at the hub." in result.stdout
    spent = re.search(r"\$(\d+\.\d+) spent, \$(\d+\.\d+) left, 1 calls", result.stdout)
    assert spent and 0 < float(spent.group(1)) < 0.001


def test_runaway_agent_is_killed_although_it_catches_everything():
    result = run_example("runaway_agent.py")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "SessionKilled: Session 'demo-ticket-42' was stopped" in out
    assert "agent swallowed" not in out  # the kill went through `except Exception`
    m = re.search(r"in (\d+) calls; FakeLLM received (\d+) requests", out)
    assert m and m.group(1) == m.group(2)  # nothing reached the model after the kill
