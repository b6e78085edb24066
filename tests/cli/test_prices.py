"""``breaker prices``: the rates the engine itself uses, and their source."""

from __future__ import annotations

import json

from breaker.pricing import PriceBook
from tests.cli.conftest import assert_user_error, cli


def test_bundled_model_shows_rates_and_source():
    result = cli("prices", "gpt-4o")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "input" in out and "$2.50" in out and "$10.00" in out and "$1.25" in out
    assert "genai-prices" in out and "(bundled)" in out
    assert "128,000" in out  # context window


def test_json_matches_the_price_book_the_engine_uses():
    result = cli("prices", "claude-sonnet-4-5", "--provider", "anthropic", "--format", "json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    price = PriceBook().lookup("claude-sonnet-4-5", "anthropic")
    assert info["source"] == price.source and info["provider"] == "anthropic"
    base, tier = info["tiers"]
    assert base["above_input_tokens"] is None and tier["above_input_tokens"] == 200_000
    rates = {r["key"]: r["usd"] for r in base["rates"]}
    assert rates["input_mtok"] == "3.00" and rates["cache_read_mtok"] == "0.30"
    assert rates["cache_write_mtok"] == "3.75" and rates["cache_write_1h_mtok"] == "6.00"
    assert {r["key"]: r["usd"] for r in tier["rates"]}["output_mtok"] == "22.50"
    fees = {r["rate"]: (r["usd"], r["unit"]) for r in base["rates"]}
    assert fees["web search fee"] == ("0.01", "per search")  # $10 per thousand, shown per search


def test_provider_prefixed_name_resolves_like_the_engine():
    result = cli("prices", "anthropic/claude-3-5-haiku-latest", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model"] == "claude-3-5-haiku-latest"


def test_user_override_file_wins_and_says_so(tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"gpt-4o": {"input": 1, "output": 2, "request": 0.002}, "my-ft": {"input": 3, "output": 12}}))
    result = cli("prices", "gpt-4o", "--prices", str(prices))
    assert result.returncode == 0, result.stderr
    assert "user override" in result.stdout and "$1.00" in result.stdout and "$0.002" in result.stdout
    assert "per request" in result.stdout
    result = cli("prices", "my-ft", "--prices", str(prices), "--format", "json")
    assert json.loads(result.stdout)["source"] == "user override"


def test_unknown_model_says_how_to_add_a_price():
    result = cli("prices", "gpt-4oo")
    assert_user_error(result, "no price is known for model 'gpt-4oo'", "Breaker(prices=", "gpt-4o")


def test_bad_price_files_are_user_errors(tmp_path):
    assert_user_error(cli("prices", "x", "--prices", str(tmp_path / "missing.json")), "cannot read --prices")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_user_error(cli("prices", "x", "--prices", str(bad)), "not valid JSON")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"x": {"input": 1}}))
    assert_user_error(cli("prices", "x", "--prices", str(wrong)), "needs ['output']")


def test_missing_model_argument_is_a_usage_error():
    assert_user_error(cli("prices"), "MODEL")


def test_table_without_rich_is_plain_text_and_json_still_works():
    plain = cli("prices", "gpt-4o", block_rich=True)  # the plain tables: tests/cli/test_plain_tables.py
    assert plain.returncode == 0 and "Base rates" in plain.stdout, plain.stderr
    result = cli("prices", "gpt-4o", "--format", "json", block_rich=True)
    assert result.returncode == 0 and json.loads(result.stdout)["model"] == "gpt-4o"
