"""``breaker forecast``: next period's spend per feature, under three growth scenarios.

The baseline is the recorded run rate: the spend in the history looked at,
scaled to the length of the period to forecast. Agent usage rarely stays
flat once a feature ships (more users, longer sessions, more tool steps per
task), so the baseline is multiplied by a growth factor per scenario. The
factors are planning conventions, not a fitted model; the help says so.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ..budgets import format_seconds
from ._common import History, add_ledger_arguments, describe_span, parse_period, read_history, usd
from .render import FORMATS, Column, write_csv, write_json, write_tables

__all__ = ["SCENARIOS", "Scenario", "add_parser", "forecast", "run"]

DAY = 86_400


@dataclass(frozen=True)
class Scenario:
    """A growth assumption: next period's spend is the run rate times ``low``…``high``."""

    name: str
    low: float
    high: float
    meaning: str


SCENARIOS = (
    Scenario("conservative", 1.3, 1.3, "usage grows about a third: adoption continues at today's pace"),
    Scenario("expected", 1.8, 2.2, "usage roughly doubles: more users and longer agent runs, as is usual for a "
                                   "feature in its first months"),
    Scenario("aggressive", 2.5, 3.0, "usage grows 2.5-3x: a launch, a new customer, or agents taking more steps "
                                     "per task"),
)

HELP = "next period's spend per feature, under conservative / expected / aggressive growth"
DESCRIPTION = f"""\
Forecast next period's spend per feature from the spend recorded in a ledger.

The run rate is the recorded spend scaled to the period: the history looked at
is --since if given, else the last --period; when it covers less time than that
(a young ledger), it is scaled up from the time it does cover, counted as at least
one day so that a few minutes of calls are not blown up into a month.

The run rate is then multiplied by a growth factor, because the spend of LLM agents
grows with their usage (more users, more sessions, more steps and longer histories
per session) faster than most costs:
{chr(10).join(f"  {s.name:<13} x{s.low:g}" + (f"-{s.high:g}" if s.high != s.low else "") + f"  {s.meaning}" for s in SCENARIOS)}
These multipliers are planning conventions, not a statistical fit: use them to size
budgets (Budget(usd=..., per="feature", window="30d")), and check them against the
next report."""

EXAMPLES = """\
examples:
  breaker forecast --ledger breaker.db
  breaker forecast --ledger breaker.db --period 7d
  breaker forecast --ledger redis://localhost:6379/0 --since 14d --period 30d --format json"""


def add_parser(sub: Any) -> None:
    """Register ``breaker forecast``; ``--help`` explains the growth multipliers."""
    p = sub.add_parser("forecast", help=HELP, description=DESCRIPTION, epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_ledger_arguments(p)
    p.add_argument("--period", default="30d", metavar="DURATION",
                   help="the period to forecast (default 30d; e.g. 7d, 12h)")
    p.add_argument("--since", metavar="WHEN",
                   help="the history to base it on (default: the last --period); a duration or an ISO date")
    p.add_argument("--format", choices=FORMATS, default="table", help="table (needs rich), json or csv")
    p.set_defaults(run=run)


def forecast(history: History, period: int, *, since_given: bool) -> tuple[list[dict[str, Any]], float, float]:
    """Rows per feature (dearest first) plus a ``total`` row, the scale applied, and where history starts.

    ``scale`` turns recorded spend into spend per ``period``: the period over
    the time the history covers. A ``--since`` the user gave is taken at its
    word; otherwise the history starts at the first call in the last period
    (a young ledger), counted as at least a day (or the period, if shorter).
    """
    start = history.since if since_given and history.since is not None else history.first
    covered = max(history.now - start, min(DAY, period))
    scale = period / covered
    spend: dict[str, int] = defaultdict(int)
    calls: dict[str, int] = defaultdict(int)
    for r in history.records:
        key = r.feature or "(none)"
        spend[key] += r.cost_nano or 0
        calls[key] += 1
    rows = [_row(k, spend[k], calls[k], scale) for k in sorted(spend, key=lambda k: (-spend[k], k))]
    rows.append(_row("total", sum(spend.values()), sum(calls.values()), scale))
    return rows, scale, start


def _row(feature: str, nano: int, calls: int, scale: float) -> dict[str, Any]:
    rate = nano * scale
    row: dict[str, Any] = {
        "feature": feature,
        "calls": calls,
        "recorded_usd": nano / 1e9,
        "run_rate_usd": rate / 1e9,
    }
    for s in SCENARIOS:
        row[f"{s.name}_low_usd"] = rate * s.low / 1e9
        row[f"{s.name}_high_usd"] = rate * s.high / 1e9
    return row


def run(args: argparse.Namespace) -> int:
    """Print the forecast; 2 (via ``CliError``) for a bad period or an unusable ledger."""
    period = parse_period(args.period)
    history = read_history(args.ledger, args.since if args.since is not None else args.period, prefix=args.prefix)
    rows, scale, start = forecast(history, period, since_given=args.since is not None)
    unpriced = sum(1 for r in history.records if r.cost_nano is None)
    if args.format == "json":
        write_json({
            "period": args.period,
            "period_seconds": period,
            "history": describe_span(history, start),
            "scale": scale,
            "unpriced_calls": unpriced,
            "scenarios": [{"name": s.name, "low": s.low, "high": s.high, "meaning": s.meaning} for s in SCENARIOS],
            "features": rows,
        })
        return 0
    if args.format == "csv":
        write_csv([Column(k, k) for k in rows[0]], rows)
        return 0
    columns = [
        Column("feature", "feature"),
        Column("recorded_usd", "recorded", _usd, True),
        Column("run_rate_usd", f"run rate\nper {args.period}", _usd, True),
    ]
    for s in SCENARIOS:
        label = f"{s.name}\nx{s.low:g}" + (f"-{s.high:g}" if s.high != s.low else "")
        columns.append(Column(s.name, label, str, True))
        for row in rows:
            low, high = usd(round(row[f"{s.name}_low_usd"] * 1e9)), usd(round(row[f"{s.name}_high_usd"] * 1e9))
            row[s.name] = low if low == high else f"{low}-{high.lstrip('$')}"
    columns[0] = Column("feature", "feature")
    notes = [
        f"History {describe_span(history, start)}, scaled x{scale:.3g} to {format_seconds(period)}.",
        "Growth factors are planning conventions for agent usage (see breaker forecast --help).",
    ]
    if unpriced:
        notes.append(f"Calls with no price (not in these figures): {unpriced:,}.")
    write_tables([(f"Spend forecast for the next {args.period}, per feature", columns, rows)], notes)
    return 0


def _usd(value: float) -> str:
    return usd(round(value * 1e9))
