"""``breaker check-config PATH``, run as a user runs it: in a subprocess (issue 20).

A good file exits 0 with its budgets, ledger and alerts, secrets hidden; a bad one
exits 2 with the key, its value and the fix, and no traceback.
"""

from __future__ import annotations

import textwrap

from tests.cli.conftest import assert_user_error, cli

SLACK = "https://hooks.slack.com/services/T000/B000/XyZsEcReTtOkEn"
REDIS = "redis://:Hunter2Pa55@cache.internal:6379/0"


def write(tmp_path, text: str):
    path = tmp_path / "breaker.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


GOOD = """
    ledger_env = "BREAKER_REDIS_URL"
    unknown_price = "warn"

    [[budgets]]
    usd = 2.5
    per = "session"

    [[budgets]]
    usd = 100
    per = "feature"
    window = "1d"
    warn_at = [0.5, 0.9]

    [loops]
    max_calls = 40

    [degrade]
    max_output_tokens = 512
    [degrade.model_map]
    "gpt-4o" = "gpt-4o-mini"

    [[alerts]]
    type = "log"

    [[alerts]]
    type = "slack"
    url_env = "SLACK_WEBHOOK_URL"
    kinds = ["tripped", "loop"]
"""


def test_a_good_file_prints_its_budgets_ledger_and_alerts_without_secrets(tmp_path):
    path = write(tmp_path, GOOD)
    result = cli("check-config", path, env={"SLACK_WEBHOOK_URL": SLACK, "BREAKER_REDIS_URL": REDIS,
                                            "XDG_STATE_HOME": str(tmp_path / "state")})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"{path}: OK\n")
    for line in ("  ledger: redis://:***@cache.internal:6379/0 (from $BREAKER_REDIS_URL)",
                 "    $2.50 per session (kill; warn at 50%, 80%, 95%)",
                 "    $100.00 per feature per 1d (kill; warn at 50%, 90%)",
                 "  degrade: gpt-4o -> gpt-4o-mini, max output tokens 512"):
        assert line + "\n" in out, (line, out)
    assert "slack: Webhook('https://hooks.slack.com', format='slack'), URL from $SLACK_WEBHOOK_URL" in out
    assert "unknown prices: warn" in out
    assert "SLACK_WEBHOOK_URL, BREAKER_REDIS_URL" in out
    assert "XyZsEcReTtOkEn" not in out + result.stderr and "Hunter2Pa55" not in out + result.stderr


def test_a_sqlite_ledger_is_shown_by_its_absolute_path(tmp_path):
    path = write(tmp_path, 'ledger = "sqlite://spend.db"\n[[budgets]]\ncalls = 10\nper = "user"\n')
    result = cli("check-config", path, env={"XDG_STATE_HOME": str(tmp_path / "state")})
    assert result.returncode == 0, result.stderr
    assert f"  ledger: sqlite://{tmp_path / 'spend.db'}\n" in result.stdout
    assert "10 calls per user (kill;" in result.stdout
    assert "alerts: log (the default)" in result.stdout


def test_a_bad_file_exits_2_naming_the_key(tmp_path):
    path = write(tmp_path, "[[budgets]]\nusd = 5\n[[budgets]]\nusd = \"five\"\n")
    assert_user_error(cli("check-config", path), f"{path}: budgets[1].usd = \"five\"", "the 2nd [[budgets]] table",
                      "must be a number of dollars")
    path = write(tmp_path, "[loops]\nmax_identicl = 2\n")
    assert_user_error(cli("check-config", path), "loops.max_identicl", "did you mean max_identical?")


def test_an_inline_secret_exits_2_without_printing_it(tmp_path):
    path = write(tmp_path, f'[[alerts]]\ntype = "slack"\nurl = "{SLACK}"\n')
    result = cli("check-config", path)
    assert_user_error(result, "alerts[0].url", 'url_env = "SLACK_WEBHOOK_URL"')
    assert "XyZsEcReTtOkEn" not in result.stderr + result.stdout
    path = write(tmp_path, f'ledger = "{REDIS}"\n')
    result = cli("check-config", path)
    assert_user_error(result, 'ledger = "redis://:***@cache.internal:6379/0"', "ledger_env")
    assert "Hunter2Pa55" not in result.stderr + result.stdout


def test_a_missing_file_or_variable_exits_2(tmp_path):
    assert_user_error(cli("check-config", str(tmp_path / "nope.toml")), "no configuration file at")
    path = write(tmp_path, '[[alerts]]\ntype = "webhook"\nurl_env = "ALERTS_URL_UNSET"\n')
    assert_user_error(cli("check-config", path), "$ALERTS_URL_UNSET is not set")
    path = write(tmp_path, "[[budgets]\nusd = 5\n")
    assert_user_error(cli("check-config", path), "not valid TOML", "line 1")
