"""Hostile ids in ``breaker report`` / ``forecast`` / ``prices`` / ``demo`` output (issue 19).

Ids come from whoever calls the library. A session id of ``[link=file:///etc/passwd]x[/link]``
must print as those characters (not as a terminal hyperlink that hides the real id), an
escape sequence such as ``ESC[2J`` must not reach the terminal, and a CSV cell such as
``=HYPERLINK(...)`` must not run in a spreadsheet. JSON is left exactly as the data is.
The ledger is written by a real ``Breaker`` on a real SQLite file; the commands run as a
user runs them, in a subprocess.
"""

from __future__ import annotations

import csv
import io
import json

import pytest

from breaker import Breaker, Usage
from breaker.adapter import Call
from breaker.cli.render import Column, csv_cell, visible, write_csv, write_tables
from tests.cli.conftest import assert_user_error, cli

LINK = "[link=file:///etc/passwd]x[/link]"
FORMULA = '=HYPERLINK("http://evil/","click")'
WIPE = "\x1b[2Jwiped\u202e"  # clear-screen, then a right-to-left override
WIPE_SHOWN = "\\x1b[2Jwiped\\u202e"
MODEL = "+cmd|' /C calc'!A0"
OUTCOME = "@SUM(1+1)"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A SQLite ledger holding one priced call whose every id is hostile."""
    from breaker.ledgers import SQLite

    path = tmp_path_factory.mktemp("hostile") / "breaker.db"
    ledger = SQLite(str(path))
    try:
        guard = Breaker(alerts=[], ledger=ledger, loops=None, prices={MODEL: {"input": 1, "output": 2}})
        with guard.session(LINK, feature=FORMULA, user=WIPE) as session:
            ticket = guard.admit(Call(MODEL, "openai", input_tokens=100, max_output_tokens=100, fingerprint=1))
            cost = guard.settle(ticket, Usage(100, 10))
            session.outcome(OUTCOME)
    finally:
        ledger.close()
    return str(path), cost


# ------------------------------------------------------------------ the rules, exactly


@pytest.mark.parametrize("raw, shown", [
    ("ticket-42", "ticket-42"),
    (LINK, LINK),  # markup is not this function's business: tables never read ids as markup
    ("\x1b[2J", "\\x1b[2J"),
    ("a\tb\nc\rd", "a\\tb\\nc\\rd"),
    ("\u202eevil", "\\u202eevil"),
    ("bell\x07\x7f\x9b", "bell\\x07\\x7f\\x9b"),
    ("zero\u200bwidth", "zero\\u200bwidth"),
    ("café 東京 ✓", "café 東京 ✓"),  # printable text is left alone
])
def test_visible_escapes_exactly_what_does_not_print_as_itself(raw, shown):
    assert visible(raw) == shown


@pytest.mark.parametrize("raw, cell", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
    ("support", "support"), ("a=b", "a=b"), ("", ""),
    (-1.5, -1.5), (-3, -3), (None, None),  # numbers stay numbers, negative ones included
])
def test_csv_cells_that_start_like_a_formula_get_a_quote(raw, cell):
    assert csv_cell(raw) == cell


def test_write_csv_prefixes_formula_cells_and_keeps_numbers():
    out = io.StringIO()
    write_csv([Column("key", "key"), Column("cost", "cost")], [{"key": FORMULA, "cost": -0.5}], out)
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [["key", "cost"], ["'" + FORMULA, "-0.5"]]


def test_a_terminal_table_shows_ids_literally_and_makes_no_hyperlink():
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system="truecolor", width=160, highlight=False)
    write_tables([(f"Spend by {LINK}", [Column("key", "session")], [{"key": LINK}, {"key": WIPE}])],
                 notes=[f"tripped: session {WIPE} ({LINK})"], console=console)
    text = out.getvalue()
    assert "\x1b]8;" not in text  # no OSC 8 hyperlink anywhere
    assert "\x1b[2J" not in text and "\u202e" not in text
    assert text.count(LINK) == 3  # title, row, note
    assert text.count(WIPE_SHOWN) == 2  # row, note


# ------------------------------------------------------------------ the commands


def test_report_table_prints_ids_literally(hostile):
    result = cli("report", "--ledger", hostile[0])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\x1b" not in out and "\u202e" not in out
    for literal in (LINK, FORMULA, WIPE_SHOWN, MODEL, OUTCOME):
        assert literal in out, (literal, out)


def test_report_csv_quotes_formula_cells(hostile):
    result = cli("report", "--ledger", hostile[0], "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = {(r["by"], r["key"]): r for r in csv.DictReader(io.StringIO(result.stdout))}
    assert len([key for by, key in rows if by == "day"]) == 1  # the per-day rows carry no id
    rows = {k: v for k, v in rows.items() if k[0] != "day"}
    assert set(rows) == {("session", LINK), ("feature", "'" + FORMULA), ("user", WIPE), ("model", "'" + MODEL)}
    assert rows[("user", WIPE)]["outcomes"] == "'" + OUTCOME + "=1"
    assert int(rows[("model", "'" + MODEL)]["cost_nano_usd"]) == hostile[1]


def test_report_json_keeps_ids_exactly(hostile):
    result = cli("report", "--ledger", hostile[0], "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [r["key"] for r in data["by"]["session"]] == [LINK]
    assert [r["key"] for r in data["by"]["feature"]] == [FORMULA]
    assert [r["key"] for r in data["by"]["user"]] == [WIPE]
    assert [r["key"] for r in data["by"]["model"]] == [MODEL]
    assert data["by"]["user"][0]["outcomes"] == {OUTCOME: 1}
    assert "\x1b" not in result.stdout  # JSON escapes it itself (\u001b)


def test_forecast_table_and_csv(hostile):
    table = cli("forecast", "--ledger", hostile[0])
    assert table.returncode == 0, table.stderr
    assert FORMULA in table.stdout and "\x1b" not in table.stdout
    result = cli("forecast", "--ledger", hostile[0], "--format", "csv")
    assert result.returncode == 0, result.stderr
    features = [r["feature"] for r in csv.DictReader(io.StringIO(result.stdout))]
    assert features == ["'" + FORMULA, "total"]


def test_prices_shows_a_hostile_model_name_literally(tmp_path):
    name = LINK + "\x1b[2J"
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({name: {"input": 1, "output": 2}}))
    result = cli("prices", name, "--prices", str(prices))
    assert result.returncode == 0, result.stderr
    assert f"{LINK}\\x1b[2J: prices from user override." in result.stdout
    assert "\x1b" not in result.stdout


def test_an_error_message_quoting_an_id_escapes_it():
    result = cli("prices", "gpt-4o-mnii\x1b[2J")
    assert_user_error(result, "breaker prices gpt-4o-mnii\\x1b[2J --prices prices.json", "Did you mean: gpt-4o-mini")
    assert "\x1b" not in result.stderr


def test_a_redis_password_never_reaches_the_terminal():
    from tests.ledgers.redis_server import free_port

    result = cli("report", "--ledger", f"redis://:hunter2-S3CRET@127.0.0.1:{free_port()}/0")
    assert_user_error(result, "redis://:***@127.0.0.1")
    assert "hunter2-S3CRET" not in result.stderr + result.stdout


def test_a_redis_password_stays_out_of_the_json_report(redis_server):
    import uuid

    import redis

    from breaker.ledgers import Redis

    user, password = f"cli{uuid.uuid4().hex[:6]}", f"pw-{uuid.uuid4().hex}"
    admin = redis.Redis.from_url(redis_server.url)
    admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all")
    url = f"redis://{user}:{password}@127.0.0.1:{redis_server.port}/0"
    prefix = f"esc{uuid.uuid4().hex[:6]}:"
    ledger = Redis(url, prefix=prefix)
    try:
        guard = Breaker(alerts=[], ledger=ledger, loops=None)
        with guard.session(LINK):
            guard.settle(guard.admit(Call("gpt-4o-mini", "openai", input_tokens=10, max_output_tokens=5,
                                          fingerprint=2)), Usage(10, 5))
    finally:
        ledger.close()
        admin.close()
    result = cli("report", "--ledger", url, "--prefix", prefix, "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ledger"] == f"redis://{user}:***@127.0.0.1:{redis_server.port}/0"
    assert [r["key"] for r in data["by"]["session"]] == [LINK]
    assert password not in result.stdout + result.stderr


# ------------------------------------------------------------------ demo / live lines


def test_demo_lines_escape_control_characters(capsys):
    from breaker.cli._live import Display
    from breaker.events import Event

    display = Display(0.05)
    display.line(f"model {WIPE} said {LINK}")
    display.event(Event("tripped", f"Session {WIPE} was stopped"))
    out = capsys.readouterr().out
    assert out == f"model {WIPE_SHOWN} said {LINK}\n     KILL     Session {WIPE_SHOWN} was stopped\n"
