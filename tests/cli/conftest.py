"""Helpers for driving the ``breaker`` command as a user does: in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None, block_rich: bool = False, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run ``python -m breaker ARGS`` and capture its output.

    ``block_rich`` runs it as if the ``cli`` extra were not installed (rich
    cannot be imported), the way a user without it would.
    """
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "160", "NO_COLOR": "1"}
    full_env.pop("OPENAI_API_KEY", None)
    full_env.update(env or {})
    if block_rich:
        code = "import sys; sys.modules['rich'] = None; from breaker.cli import main; sys.exit(main())"
        argv = [sys.executable, "-c", code, *args]
    else:
        argv = [sys.executable, "-m", "breaker", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=timeout)


def assert_user_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit status 2, a message naming what is wrong, and no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


@pytest.fixture
def run_cli():
    return cli
