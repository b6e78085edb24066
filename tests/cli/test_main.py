"""The command line as a whole: help, bad commands, version."""

from __future__ import annotations

from breaker import __version__
from tests.cli.conftest import assert_user_error, cli


def test_help_lists_every_command():
    result = cli("--help")
    assert result.returncode == 0
    for command in ("demo", "report", "prices", "forecast"):
        assert command in result.stdout


def test_no_command_and_unknown_command_are_usage_errors():
    assert_user_error(cli(), "required")
    assert_user_error(cli("spend"), "invalid choice")


def test_version():
    result = cli("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_console_script_is_installed_and_runs(tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("breaker")
    exe = str(script) if script.exists() else shutil.which("breaker")
    assert exe, "the `breaker` console script is not installed (pip install -e .)"
    result = subprocess.run([exe, "prices", "gpt-4o-mini", "--format", "json"], capture_output=True, text=True)
    assert result.returncode == 0 and '"gpt-4o-mini"' in result.stdout
