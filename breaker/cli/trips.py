"""``breaker trips``: the scopes a shared ledger holds tripped: what, why, since when, until when.

Read from the ledger's trip markers (``ledgers.base.TripMark``): a budget that could not pay
for a call marks its scope, and every process refuses the scope's calls while the marker
stands. It ends by itself with its calendar period, or when a rolling window frees enough;
a whole-life trip stands until an operator's grant (``breaker grant``) lifts it. Markers of
periods that have ended are not shown. Loop-detection stops are the agent process's own and
are listed by ``breaker report``.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from ..budgets import METRICS, USD, format_amount, format_seconds, parse_period_key
from ..ledgers.base import TripMark
from ..redact import scrub
from ._common import CliError, add_ledger_arguments, open_ledger
from .render import Column, write_csv, write_json, write_tables

__all__ = ["add_parser", "run", "trip_rows"]

HELP = "list the scopes a shared ledger holds tripped (what, why, when)"

DESCRIPTION = """\
The scopes a shared ledger holds tripped: what (the scope and the budget), why
(the spend and what the refused call needed), since when, and until when. A
trip of a calendar period ends with the period, one of a rolling window when the
window frees enough, a whole-life one when an operator grants more
(`breaker grant`). Loop-detection stops belong to the agent's process and are
listed by `breaker report`."""

COLUMNS = (
    Column("scope", "scope"), Column("budget", "budget"), Column("why", "why"), Column("since", "since"),
    Column("until", "until"),
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("trips", help=HELP, description=DESCRIPTION,
                       epilog="example:\n  breaker trips --ledger /var/lib/app/breaker.db",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_ledger_arguments(p)
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    now = time.time()
    ledger = open_ledger(args.ledger, args.prefix)
    try:
        marks = list(getattr(ledger, "trips", lambda now: [])(now))
    except Exception as e:
        raise CliError(f"cannot read the trips on the ledger at {scrub(args.ledger)}: {scrub(str(e))}") from None
    finally:
        try:
            ledger.close()
        except Exception:
            pass
    rows = trip_rows(marks, now)
    if args.format == "json":
        write_json({"ledger": scrub(args.ledger), "trips": rows})
    elif args.format == "csv":
        write_csv([Column(k, k) for k in rows[0]] if rows else list(COLUMNS), rows)
    elif rows:
        write_tables([(f"Tripped scopes ({len(rows)})", COLUMNS, rows)],
                     ["Lift one with: breaker grant --ledger … --per SCOPE --key ID --usd AMOUNT"])
    else:
        print(f"No scope is tripped on {scrub(args.ledger)}.")
    return 0


def trip_rows(marks: list[TripMark], now: float) -> list[dict[str, Any]]:
    """One row per standing trip marker, oldest first; markers of ended periods left out."""
    rows = []
    for mark in sorted(marks, key=lambda m: (m.at or 0.0, m.counter.key, m.metric)):
        key, window = mark.counter.key, mark.counter.window
        period = parse_period_key(key) if "@" in key else None
        if period is not None and period[2] <= now:
            continue  # its period is over, and the trip with it
        scope = period[0] if period is not None else key
        per, _, name = scope.partition(":")
        if period is not None:
            _, kind, end, tz = period
            first = key.rpartition("@")[2].split(":")[1]
            budget = f"per {kind} ({tz}), the one from {first}"
            until = f"{datetime.fromtimestamp(end, ZoneInfo(tz)):%Y-%m-%d %H:%M} {tz} (the {kind} ends)"
        elif window:
            budget, until = f"per {format_seconds(window)} (rolling)", "the window frees enough"
        else:
            budget, until = "whole life", "an operator's grant"
        metric = METRICS[mark.metric]
        granted = f" ({format_amount(mark.metric, mark.granted)} granted)" if mark.granted else ""
        why = (f"{metric} budget: {format_amount(mark.metric, mark.settled)} spent{granted}; a call needed at least "
               f"{format_amount(mark.metric, mark.needed)} more" if mark.needed else
               f"{metric} budget: {format_amount(mark.metric, mark.settled)} spent{granted}, past its limit")
        rows.append({
            "scope": scope, "per": per if name else scope, "key": name or None, "budget": budget, "metric": metric,
            "why": why, "spent": mark.settled / 1e9 if mark.metric == USD else mark.settled,
            "granted": mark.granted / 1e9 if mark.metric == USD else mark.granted,
            "needed": mark.needed / 1e9 if mark.metric == USD else mark.needed,
            "since": _iso(mark.at) if mark.at is not None else "", "until": until, "counter": key, "window": window,
        })
    return rows


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
