"""``breaker forecast`` from a SQLite ledger written by a real guard."""

from __future__ import annotations

import csv
import re
import io
import json

import pytest

from tests.cli.conftest import assert_user_error, cli
from tests.cli.history import DAY, write_sqlite


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    path = tmp_path_factory.mktemp("forecast") / "breaker.db"
    return str(path), write_sqlite(path)


def forecast_json(path: str, *args: str) -> dict:
    result = cli("forecast", "--ledger", path, "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_scenarios_multiply_the_run_rate(ledger):
    path, truth = ledger
    data = forecast_json(path)
    rows = {r["feature"]: r for r in data["features"]}
    assert set(rows) == {"support", "summarize", "total"}
    assert rows["total"]["recorded_usd"] == pytest.approx(truth.total / 1e9)
    assert rows["support"]["recorded_usd"] == pytest.approx(truth.cost[("feature", "support")] / 1e9)
    # the history starts with the call of ten days ago: 30 days is three times that
    assert data["scale"] == pytest.approx(3.0, rel=0.01)
    for row in rows.values():
        rate = row["run_rate_usd"]
        assert rate == pytest.approx(row["recorded_usd"] * data["scale"])
        assert row["conservative_low_usd"] == row["conservative_high_usd"] == pytest.approx(rate * 1.3)
        assert (row["expected_low_usd"], row["expected_high_usd"]) == pytest.approx((rate * 1.8, rate * 2.2))
        assert (row["aggressive_low_usd"], row["aggressive_high_usd"]) == pytest.approx((rate * 2.5, rate * 3.0))
    assert data["unpriced_calls"] == 1


def test_period_sets_the_history_and_a_young_history_counts_as_a_day(ledger):
    path, truth = ledger
    data = forecast_json(path, "--period", "7d")
    total = next(r for r in data["features"] if r["feature"] == "total")
    assert total["recorded_usd"] == pytest.approx((truth.total - truth.old_cost) / 1e9)  # last 7 days only
    assert data["scale"] == pytest.approx(7.0)  # a minute of history counts as one day
    data = forecast_json(path, "--period", "30d", "--since", "15d")
    assert data["scale"] == pytest.approx(2.0, rel=0.01)  # an explicit --since is taken at its word


def test_table_and_csv(ledger):
    path, _ = ledger
    result = cli("forecast", "--ledger", path)
    assert result.returncode == 0, result.stderr
    assert "conservative" in result.stdout and "x1.3" in result.stdout and "x1.8-2.2" in result.stdout
    assert "x2.5-3" in result.stdout and re.search(r"\$0\.\d{4}-0\.\d{4}", result.stdout)  # ranges
    result = cli("forecast", "--ledger", path, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["feature"] for r in rows][-1] == "total" and "expected_high_usd" in rows[0]


def test_help_explains_the_multipliers():
    result = cli("forecast", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "x1.3" in text and "x1.8-2.2" in text and "x2.5-3" in text
    assert "growth" in text and "usage" in text and "not a statistical fit" in text


def test_bad_arguments_and_ledgers(ledger, tmp_path):
    path, _ = ledger
    assert_user_error(cli("forecast", "--ledger", path, "--period", "a month"), "--period 'a month'")
    assert_user_error(cli("forecast", "--ledger", str(tmp_path / "missing.db")), "no ledger at")
    assert_user_error(cli("forecast"), "--ledger")
    from breaker.ledgers import SQLite

    SQLite(str(tmp_path / "empty.db")).close()
    assert_user_error(cli("forecast", "--ledger", str(tmp_path / "empty.db")), "holds no call records")
