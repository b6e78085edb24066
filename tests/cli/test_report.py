"""``breaker report`` against a SQLite ledger written by a real guard."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from breaker.budgets import USD, format_amount
from tests.cli.conftest import assert_user_error, cli
from tests.cli.history import write_sqlite


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "breaker.db"
    truth = write_sqlite(path)
    return str(path), truth


@pytest.fixture(scope="module")
def full(ledger):
    """The default JSON report, run once for the tests that read it."""
    return report_json(ledger[0])


def report_json(path: str, *args: str) -> dict:
    result = cli("report", "--ledger", path, "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_json_figures_match_what_the_engine_charged(ledger, full):
    path, truth = ledger
    data = full
    assert data["totals"]["cost_nano_usd"] == truth.total
    assert data["totals"]["calls"] == 11 and data["totals"]["unpriced_calls"] == truth.unpriced == 1
    for by in ("session", "feature", "user", "model"):
        rows = {r["key"]: r for r in data["by"][by]}
        expected = {key for (b, key) in truth.calls if b == by}
        assert set(rows) == expected, by
        for key, row in rows.items():
            assert row["cost_nano_usd"] == truth.cost[(by, key)], (by, key)
            assert row["calls"] == truth.calls[(by, key)], (by, key)
            assert row["degraded_calls"] == truth.degraded[(by, key)], (by, key)
        costs = [r["cost_nano_usd"] for r in data["by"][by]]
        assert costs == sorted(costs, reverse=True)  # dearest first


def test_tokens_by_kind_failures_and_outcomes(ledger, full):
    path, truth = ledger
    data = full
    models = {r["key"]: r for r in data["by"]["model"]}
    haiku = models["claude-3-5-haiku-latest"]
    assert (haiku["input_tokens"], haiku["cache_read_tokens"], haiku["output_tokens"]) == (5000, 4000, 300)
    assert models["unpriced-model"]["unpriced_calls"] == 1 and models["gpt-4o-mini"]["failed_calls"] == 1
    assert "outcomes" in models["gpt-4o"] and models["gpt-4o"]["outcomes"] == {}  # outcomes belong to sessions
    features = {r["key"]: r for r in data["by"]["feature"]}
    support = features["support"]
    assert support["outcomes"] == {"escalated": 1, "resolved": 1}
    assert support["cost_per_outcome_usd"]["resolved"] == pytest.approx(truth.cost[("feature", "support")] / 1e9)
    assert support["cost_per_any_outcome_usd"] == pytest.approx(truth.cost[("feature", "support")] / 2e9)
    users = {r["key"]: r for r in data["by"]["user"]}
    assert users["(none)"]["outcomes"] == {"resolved": 1}


def test_table_is_readable(ledger):
    path, truth = ledger
    result = cli("report", "--ledger", path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for title in ("Spend by session", "Spend by feature", "Spend by user", "Spend by model"):
        assert title in out
    assert format_amount(USD, truth.cost[("feature", "support")]) in out
    assert "Cost per outcome, by feature" in out and "escalated" in out and "Total from" in out
    assert "Calls with no price" in out and "Traceback" not in result.stderr


def test_by_and_top(ledger):
    path, _ = ledger
    result = cli("report", "--ledger", path, "--by", "model", "--top", "2")
    assert result.returncode == 0, result.stderr
    assert "Spend by model (dearest 2 of 5" in result.stdout and "Spend by session" not in result.stdout
    data = report_json(path, "--by", "user", "--by", "feature")
    assert list(data["by"]) == ["user", "feature"]


def test_csv_has_one_row_per_group_key(ledger):
    path, truth = ledger
    result = cli("report", "--ledger", path, "--by", "feature", "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {r["key"] for r in rows} == {"support", "summarize"} and {r["by"] for r in rows} == {"feature"}
    support = next(r for r in rows if r["key"] == "support")
    assert int(support["cost_nano_usd"]) == truth.cost[("feature", "support")]
    assert "escalated=1" in support["outcomes"]


def test_since_leaves_older_calls_out(ledger):
    path, truth = ledger
    assert report_json(path, "--since", "7d")["totals"]["cost_nano_usd"] == truth.total - truth.old_cost
    three_days_ago = (datetime.now(timezone.utc) - timedelta(days=3)).date().isoformat()
    data = report_json(path, "--since", three_days_ago)
    assert "old-1" not in {r["key"] for r in data["by"]["session"]}
    assert report_json(path, "--since", "30d")["totals"]["cost_nano_usd"] == truth.total


def test_nothing_since_then_is_a_clear_error(ledger):
    path, _ = ledger
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).date().isoformat()
    assert_user_error(cli("report", "--ledger", path, "--since", tomorrow), "no call records since", "--since")


def test_bad_arguments(ledger):
    path, _ = ledger
    assert_user_error(cli("report", "--ledger", path, "--since", "last tuesday"), "--since 'last tuesday'")
    assert_user_error(cli("report", "--ledger", path, "--by", "team"), "invalid choice")
    assert_user_error(cli("report", "--ledger", path, "--format", "xml"), "invalid choice")
    assert_user_error(cli("report", "--ledger", path, "--top", "-1"), "--top")
    assert_user_error(cli("report"), "--ledger")


def test_missing_empty_and_foreign_ledgers(tmp_path):
    assert_user_error(cli("report", "--ledger", str(tmp_path / "nope.db")), "no ledger at")
    assert_user_error(cli("report", "--ledger", str(tmp_path)), "is a directory")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    assert_user_error(cli("report", "--ledger", str(junk)), "cannot")
    import sqlite3

    other = tmp_path / "app.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    assert_user_error(cli("report", "--ledger", str(other)), "is not a breaker ledger")
    with sqlite3.connect(other) as conn:  # a read-only command left someone else's database alone
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["users"]
    (tmp_path / "zero.db").write_bytes(b"")
    assert_user_error(cli("report", "--ledger", str(tmp_path / "zero.db")), "is not a breaker ledger")

    from breaker.ledgers import SQLite

    SQLite(str(tmp_path / "empty.db")).close()
    assert_user_error(cli("report", "--ledger", str(tmp_path / "empty.db")), "holds no call records")


def test_table_without_rich_is_plain_text_and_json_needs_nothing(ledger):
    path, truth = ledger
    plain = cli("report", "--ledger", path, block_rich=True)  # the plain tables: tests/cli/test_plain_tables.py
    assert plain.returncode == 0 and "Spend by session" in plain.stdout, plain.stderr
    result = cli("report", "--ledger", path, "--format", "json", block_rich=True)
    assert result.returncode == 0 and json.loads(result.stdout)["totals"]["cost_nano_usd"] == truth.total
