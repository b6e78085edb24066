"""Tables without ``rich``: ``breaker report`` and ``breaker prices`` print plain aligned text (issue 20).

Only the tables needed the ``cli`` extra; without it the same rows print as plain text,
with ids escaped exactly as the rich tables escape them. The commands run in a
subprocess in which ``rich`` cannot be imported (``block_rich``), the way a bare
``pip install agent-cost-breaker`` runs them; the ledger is written by a real Breaker.
"""

from __future__ import annotations

import io
import json
import re

import pytest

from breaker import Breaker, Usage
from breaker.adapter import Call
from breaker.cli.render import Column, write_plain
from tests.cli.conftest import cli

LINK = "[link=file:///etc/passwd]x[/link]"
WIPE = "\x1b[2Jwiped\u202e"
WIPE_SHOWN = "\\x1b[2Jwiped\\u202e"
MODELS = {"house-small": {"input": 1, "output": 2}, "house-large": {"input": 10, "output": 20}}


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    """A SQLite ledger: calls on two models, one session whose ids are hostile. Returns (path, costs)."""
    from breaker.ledgers import SQLite

    tmp = tmp_path_factory.mktemp("plain")
    path = tmp / "breaker.db"
    store = SQLite(str(path))
    costs: dict[str, int] = {}
    try:
        guard = Breaker(alerts=[], ledger=store, loops=None, prices=MODELS, telemetry=False)
        for sid, user, model, n in (("plain-1", "acme", "house-small", 3), (LINK, WIPE, "house-large", 2)):
            with guard.session(sid, feature="support", user=user):
                for i in range(n):
                    ticket = guard.admit(Call(model, "openai", input_tokens=1000, max_output_tokens=100,
                                              fingerprint=i))
                    costs[model] = costs.get(model, 0) + guard.settle(ticket, Usage(1000, 50))
    finally:
        store.close()
    return str(path), costs


def test_write_plain_aligns_columns_under_two_line_headers():
    out = io.StringIO()
    columns = [Column("key", "model"), Column("calls", "calls", lambda v: f"{v:,}", True),
               Column("cost", "total\ncost", str, True)]
    rows = [{"key": "gpt-4o", "calls": 1234, "cost": "$1.50"}, {"key": "東京-model", "calls": 7, "cost": None},
            {"key": WIPE, "calls": 0, "cost": "$0.0001"}]
    write_plain([("Spend by model", columns, rows)], notes=[f"note about {WIPE}"], out=out)
    assert out.getvalue() == (
        "Spend by model\n"
        "                             total\n"
        "model               calls     cost\n"
        "------------------  -----  -------\n"
        "gpt-4o              1,234    $1.50\n"
        "東京-model              7        -\n"  # wide characters take two columns each
        "\\x1b[2Jwiped\\u202e      0  $0.0001\n"
        "\n"
        "note about \\x1b[2Jwiped\\u202e\n"
    )


def _table(text: str, title: str) -> list[str]:
    """The lines of one plain table: from its title to the blank line after it."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = lines.index("", start)
    return lines[start + 1:end]


def test_report_without_rich_prints_the_same_figures_as_json(ledger):
    path, costs = ledger
    plain = cli("report", "--ledger", path, block_rich=True)
    assert plain.returncode == 0, plain.stderr
    assert "Traceback" not in plain.stderr and "pip install" not in plain.stderr
    data = json.loads(cli("report", "--ledger", path, "--format", "json", block_rich=True).stdout)

    table = _table(plain.stdout, "Spend by model")
    rule = next(i for i, line in enumerate(table) if set(line) <= {"-", " "} and line)
    spans = [m.span() for m in re.finditer(r"-+", table[rule])]
    rows = table[rule + 1:]
    assert len(rows) == 2
    shown = {}
    for row in rows:
        # every cell sits in its column: names from the left edge, figures against the right one
        cells = [row[a:b].strip() for a, b in spans]
        assert all(row[b:b + 2].strip() == "" for _, b in spans[:-1]), row
        assert all(row[b - 1] != " " for _, b in spans[1:]), row  # numeric: right-aligned
        shown[cells[0]] = cells
    by_model = {g["key"]: g for g in data["by"]["model"]}
    assert set(shown) == set(by_model) == set(costs)
    for model, cells in shown.items():
        assert cells[1] == str(by_model[model]["calls"])
        assert int(cells[2].replace(",", "")) == by_model[model]["input_tokens"]
        assert by_model[model]["cost_nano_usd"] == costs[model]
        assert f"${costs[model] / 1e9:,.4f}" in cells


def test_report_without_rich_shows_hostile_ids_literally(ledger):
    result = cli("report", "--ledger", f"sqlite://{ledger[0]}", block_rich=True)  # the config file's spelling
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\x1b" not in out and "\u202e" not in out
    assert LINK in out and WIPE_SHOWN in out
    assert re.search(rf"^{re.escape(LINK)}\s+2\s", out, re.M), out  # the session row starts with its id


def test_prices_without_rich_prints_the_rates():
    result = cli("prices", "gpt-4o-mini", block_rich=True)
    assert result.returncode == 0, result.stderr
    data = json.loads(cli("prices", "gpt-4o-mini", "--format", "json", block_rich=True).stdout)
    rows = _table(result.stdout, "Base rates")
    assert rows[0].split() == ["rate", "USD", "unit"]
    for rate in data["tiers"][0]["rates"]:
        line = next(r for r in rows if r.startswith(rate["rate"] + "  "))
        assert re.search(rf"\s{re.escape('$' + rate['usd'])}  {re.escape(rate['unit'])}$", line), (rate, line)
    assert "gpt-4o-mini at openai: prices from genai-prices" in result.stdout
