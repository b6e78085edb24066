"""``breaker report``: where the money went, from a ledger's call records.

Spend is grouped by session, feature, user and model: calls, tokens by kind,
cost, cost per outcome (``Session.outcome``), trips and degraded calls. The
figures are sums of the ledger's ``CallRecord``s, priced by the engine when
each call settled; this command never re-prices anything.
"""

from __future__ import annotations

import argparse
from collections import Counter as Tally
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence

from ..ledgers.base import CallRecord
from ..redact import scrub
from ._common import Outcome, add_ledger_arguments, describe_span, read_history, usd
from .render import FORMATS, Column, write_csv, write_json, write_tables

__all__ = ["GROUPS", "Group", "add_parser", "group_records", "run", "table_columns", "table_row"]

GROUPS = ("session", "feature", "user", "model")
NONE = "(none)"  # feature / user not set on the session
DEFAULT_TOP = 20

HELP = "spend by session, feature, user and model, from a SQLite file or Redis ledger"
DESCRIPTION = """\
Spend by session, feature, user and model from the call records a Breaker kept:
calls, tokens by kind, cost, cost per outcome, trips and degraded calls.

Cost per outcome is a group's whole spend divided by the number of outcomes
recorded with Session.outcome(name) in it, so sessions that failed count against
the ones that succeeded: what one resolved ticket really costs. Outcomes belong to
sessions, not models, so the model table has none.

A trip is a session stopped by a budget or a loop detector; a degraded call was
sent cheaper (another model, fewer output tokens) because a budget or a detector
asked for it."""

EXAMPLES = """\
examples:
  breaker report --ledger breaker.db
  breaker report --ledger breaker.db --since 7d --by feature
  breaker report --ledger redis://localhost:6379/0 --since 2026-11-01 --format csv > spend.csv"""


@dataclass
class Group:
    """One group's totals (integers: tokens, calls, nano-USD)."""

    key: str
    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nano: int = 0
    unpriced_calls: int = 0
    degraded_calls: int = 0
    sessions: set[str] = field(default_factory=set)
    tripped: dict[str, str] = field(default_factory=dict)  # session -> reason
    outcomes: Tally = field(default_factory=Tally)

    def add(self, r: CallRecord) -> None:
        reason = trip_reason(r)
        if reason is not None:
            self.tripped.setdefault(r.session, reason)
        if r.outcome == "refused":  # a call refused before it was sent: a trip, not a call
            return
        self.calls += 1
        self.errors += r.outcome == "error"
        self.input_tokens += r.input_tokens
        self.cache_read_tokens += r.cache_read_tokens
        self.cache_write_tokens += r.cache_write_tokens
        self.output_tokens += r.output_tokens
        self.reasoning_tokens += r.reasoning_tokens
        if r.cost_nano is None:
            self.unpriced_calls += 1
        else:
            self.cost_nano += r.cost_nano
        self.degraded_calls += bool(r.degraded)
        self.sessions.add(r.session)

    def row(self) -> dict[str, Any]:
        """Machine values for JSON and CSV (USD as a float, exact nano-USD alongside)."""
        n_outcomes = sum(self.outcomes.values())
        return {
            "key": self.key,
            "sessions": len(self.sessions),
            "calls": self.calls,
            "failed_calls": self.errors,
            "input_tokens": self.input_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": self.cost_nano / 1e9,
            "cost_nano_usd": self.cost_nano,
            "unpriced_calls": self.unpriced_calls,
            "degraded_calls": self.degraded_calls,
            "trips": len(self.tripped),
            "outcomes": dict(self.outcomes),
            "cost_per_outcome_usd": {name: self.cost_nano / count / 1e9 for name, count in self.outcomes.items()},
            "cost_per_any_outcome_usd": self.cost_nano / n_outcomes / 1e9 if n_outcomes else None,
        }


def trip_reason(r: CallRecord) -> str | None:
    """Why a record's session was stopped, if the record says so."""
    if r.tripped:
        return r.tripped
    if r.outcome == "refused":
        return "refused"
    return None


def _key(r: CallRecord, by: str) -> str:
    value = r.model if by == "model" else getattr(r, by)
    return value if value else NONE


def group_records(records: Iterable[CallRecord], outcomes: Iterable[Outcome], by: str) -> list[Group]:
    """Totals per ``by`` key, dearest first. Outcomes join on session, feature or user."""
    groups: dict[str, Group] = {}
    for r in records:
        key = _key(r, by)
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(key)
        group.add(r)
    if by != "model":
        join: Callable[[Outcome], str | None] = {
            "session": lambda o: o[1], "feature": lambda o: o[2], "user": lambda o: o[3],
        }[by]
        for o in outcomes:
            group = groups.get(join(o) or NONE)
            if group is not None:
                group.outcomes[o[4]] += 1
    return sorted(groups.values(), key=lambda g: (-g.cost_nano, -g.calls, g.key))


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _int(v: int) -> str:
    return f"{v:,}"


# Table columns; token kinds nobody used are dropped from the table (not from JSON / CSV).
TABLE_COLUMNS = (
    Column("key", "{by}"),
    Column("calls", "calls", _int, True),
    Column("input_tokens", "input\ntokens", _int, True),
    Column("cache_read_tokens", "cache\nread", _int, True),
    Column("cache_write_tokens", "cache\nwrite", _int, True),
    Column("output_tokens", "output\ntokens", _int, True),
    Column("reasoning_tokens", "of which\nreasoning", _int, True),
    Column("cost", "cost", str, True),
    Column("degraded_calls", "degraded\ncalls", _int, True),
    Column("trips", "trips", _int, True),
)
OUTCOME_COLUMNS = (
    Column("key", "{by}"),
    Column("outcome", "outcome"),
    Column("count", "count", _int, True),
    Column("cost_each", "cost each", str, True),
)
OPTIONAL = {"cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "degraded_calls", "trips"}
FLAT_KEYS = (
    "key", "sessions", "calls", "failed_calls", "input_tokens", "cache_read_tokens", "cache_write_tokens",
    "output_tokens", "reasoning_tokens", "cost_usd", "cost_nano_usd", "unpriced_calls", "degraded_calls", "trips",
)


def add_parser(sub: Any) -> None:
    """Register ``breaker report`` (its options double as its documentation)."""
    p = sub.add_parser("report", help=HELP, description=DESCRIPTION, epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_ledger_arguments(p)
    p.add_argument("--since", metavar="WHEN", help="only calls since then: a duration back from now (1h, 7d) "
                   "or an ISO date/time, UTC unless it says otherwise (2026-11-01, 2026-11-01T09:00)")
    p.add_argument("--by", choices=GROUPS, action="append",
                   help="group by this (repeatable); default: all four")
    p.add_argument("--format", choices=FORMATS, default="table", help="table (needs rich), json or csv")
    p.add_argument("--top", type=_top, metavar="N",
                   help=f"rows per group, dearest first (tables default to {DEFAULT_TOP}; 0 = all)")
    p.set_defaults(run=run)


def _top(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 0:
        raise argparse.ArgumentTypeError("must be 0 (all) or more")
    return n


def run(args: argparse.Namespace) -> int:
    """Print the spend report; 2 (via ``CliError``) for a missing, unreadable or empty ledger."""
    history = read_history(args.ledger, args.since, prefix=args.prefix)
    bys: Sequence[str] = list(dict.fromkeys(args.by or GROUPS))
    groups = {by: group_records(history.records, history.outcomes, by) for by in bys}
    top = args.top if args.top is not None else (DEFAULT_TOP if args.format == "table" else 0)
    total = Group("total")
    for r in history.records:
        total.add(r)
    total.outcomes.update(o[4] for o in history.outcomes)
    trips = _trips(history.records)

    if args.format == "json":
        write_json({
            "from": _iso(history.since if history.since is not None else history.first),
            "to": _iso(history.now),
            "ledger": scrub(args.ledger),  # a redis:// URL's password stays out of the report
            "totals": total.row(),
            "by": {by: [g.row() for g in (gs[:top] if top else gs)] for by, gs in groups.items()},
            "trips": trips,
        })
        return 0
    if args.format == "csv":
        columns = [Column("by", "by")] + [Column(k, k) for k in FLAT_KEYS] + [
            Column("outcomes", "outcomes"), Column("cost_per_any_outcome_usd", "cost_per_any_outcome_usd")]
        rows = []
        for by, gs in groups.items():
            for g in gs[:top] if top else gs:
                row = g.row()
                row["by"] = by
                row["outcomes"] = ";".join(f"{k}={v}" for k, v in row["outcomes"].items())
                rows.append(row)
        write_csv(columns, rows)
        return 0

    tables, notes = [], []
    for by, gs in groups.items():
        shown = gs[:top] if top else gs
        rows = [table_row(g) for g in shown]
        columns = [c for c in table_columns(by) if c.key not in OPTIONAL or any(r[c.key] for r in rows)]
        more = f" (dearest {len(shown)} of {len(gs)}; --top 0 shows all)" if len(shown) < len(gs) else ""
        tables.append((f"Spend by {by}{more}", columns, rows))
        outcomes = [{"key": g.key, "outcome": name, "count": count, "cost_each": usd(-(-g.cost_nano // count))}
                    for g in shown for name, count in sorted(g.outcomes.items(), key=lambda kv: -kv[1])]
        if outcomes:
            tables.append((f"Cost per outcome, by {by}",
                           [_header(c, by) for c in OUTCOME_COLUMNS], outcomes))
    t = total.row()
    notes.append(
        f"Total {describe_span(history)}: {usd(total.cost_nano)} over {_n(t['calls'], 'call')} in "
        f"{_n(t['sessions'], 'session')} ({t['input_tokens']:,} input and {t['output_tokens']:,} output tokens); "
        f"{_n(t['degraded_calls'], 'call')} degraded"
        + (f", {_n(len(trips), 'session')} tripped." if trips else ".")
    )
    if total.unpriced_calls:
        notes.append(f"Calls with no price (not in the cost): {total.unpriced_calls:,}; "
                     f"see `breaker prices MODEL`.")
    for trip in trips[:10]:
        notes.append(f"  tripped: session {trip['session']} ({trip['reason']}) at {trip['at']}")
    if len(trips) > 10:
        notes.append(f"  … and {len(trips) - 10} more (--format json lists them all)")
    write_tables(tables, notes)
    return 0


def table_row(group: Group) -> dict[str, Any]:
    """A group's row as the tables show it (cost written out, "unpriced" when nothing was priced)."""
    row = group.row()
    row["cost"] = "unpriced" if group.unpriced_calls == group.calls else usd(group.cost_nano)
    return row


def table_columns(by: str, keys: Sequence[str] | None = None) -> list[Column]:
    """The spend-table columns, headed for ``by`` (all of them, or only ``keys``)."""
    return [_header(c, by) for c in TABLE_COLUMNS if keys is None or c.key in keys]


def _header(column: Column, by: str) -> Column:
    return Column(column.key, column.header.format(by=by), column.show, column.numeric)


def _trips(records: Sequence[CallRecord]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for r in records:
        reason = trip_reason(r)
        if reason is not None and r.session not in seen:
            seen[r.session] = {"session": r.session, "feature": r.feature, "user": r.user,
                               "reason": reason, "at": _iso(r.at)}
    return list(seen.values())


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=timezone.utc).isoformat(timespec="seconds")
