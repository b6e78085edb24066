"""``breaker demo``: the runaway agent against FakeLLM, detected, degraded and killed."""

from __future__ import annotations

import json
import re

from tests.cli.conftest import assert_user_error, cli


def test_demo_shows_detection_degradation_and_the_kill_and_feeds_report(tmp_path):
    db = str(tmp_path / "demo.db")
    result = cli("demo", "--ledger", db)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for phase in ("retry loop", "tool thrash", "history growth"):
        assert phase in out
    assert re.search(r"LOOP .*same request to gpt-4o was sent 3 times", out)
    assert re.search(r"LOOP .*tool 'lookup_order' with the same arguments", out)
    assert re.search(r"DEGRADE .*later calls are degraded", out)
    session_id = re.search(r"in session '(demo-[0-9a-f]{6})'", out).group(1)
    assert re.search(rf"KILL .*Session '{session_id}' was stopped", out)
    assert f"SessionKilled: Session '{session_id}'" in out
    # the degraded calls really went to the cheaper model, and the report says so
    assert re.search(r"gpt-4o-mini\s+\d+ in", out) and f"Session report: {session_id}" in out
    assert re.search(r"^ gpt-4o-mini\s+\d+\s+[\d,]+\s+[\d,]+\s+\$0\.\d{4}\s+\d+\s*$", out, re.M)  # spend by model
    spent = re.search(r"\$(\d\.\d{4}) of a \$0\.0500 budget", out)
    assert spent and 0 < float(spent.group(1)) <= 0.05  # never past the budget
    assert "Traceback" not in result.stderr

    # what the demo recorded is what `breaker report` reads back
    calls = int(re.search(r"(\d+) calls, [\d,]+ tokens", out).group(1))
    report = cli("report", "--ledger", db, "--format", "json")
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    (session,) = data["by"]["session"]
    assert session["key"] == session_id and session["calls"] == calls
    models = {r["key"]: r for r in data["by"]["model"]}
    assert models["gpt-4o"]["degraded_calls"] == 0 and models["gpt-4o-mini"]["degraded_calls"] == models["gpt-4o-mini"]["calls"] > 0
    assert data["totals"]["cost_usd"] <= 0.05

    # a second run on the same ledger is a new session, not born tripped
    again = cli("demo", "--ledger", db)
    assert again.returncode == 0 and re.search(r"^\s+1  retry loop\s+gpt-4o ", again.stdout, re.M), again.stdout
    (gpt4o,) = re.findall(r"^ gpt-4o\s+(\d+)\s", again.stdout, re.M)
    assert gpt4o == "3"  # its report covers its own session only
    assert len(json.loads(cli("report", "--ledger", db, "--format", "json").stdout)["by"]["session"]) == 2


def test_demo_without_rich_prints_plain_lines():
    result = cli("demo", block_rich=True)
    assert result.returncode == 0, result.stderr
    assert "SessionKilled" in result.stdout
    assert re.search(r"gpt-4o-mini\s+\d+ calls\s+[\d,]+ in\s+[\d,]+ out\s+\$0\.\d{4}", result.stdout)


def test_live_without_a_key_is_a_clear_error():
    assert_user_error(cli("demo", "--live"), "OPENAI_API_KEY")


def test_unwritable_demo_ledger_is_a_clear_error(tmp_path):
    assert_user_error(cli("demo", "--ledger", str(tmp_path / "no" / "such" / "dir.db")), "--ledger")
